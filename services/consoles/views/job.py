"""Both consoles: one job by id — every field, the error, the history, the actions."""

import streamlit as st

from services.consoles import common, widgets

user = common.logged_in_user()
st.header("Job")
widgets.show_flashes()
with common.queue() as queue:
    widgets.job_lookup(queue, user, key="lookup")
