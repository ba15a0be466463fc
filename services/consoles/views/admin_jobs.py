"""Admin: browse, filter and act on every job."""

import streamlit as st

from services.consoles import browser, common, widgets

user = common.logged_in_user()
st.header("Jobs")
widgets.show_flashes()
with common.queue() as queue:
    widgets.status_metrics(queue.stats())
    browser.job_browser(queue, user, key="jobs")
