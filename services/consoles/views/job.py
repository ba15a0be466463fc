"""Both consoles: one job by id (``?job=ID``) — every field, the whole payload and
error, the history, the actions."""

import streamlit as st

from services.consoles import common, widgets

user = common.logged_in_user()
st.header("Job")
widgets.show_flashes()
with common.queue() as queue:
    widgets.job_lookup(queue, user, key="lookup")
