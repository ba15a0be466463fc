"""Admin: browse, filter, sort and act on every job (a job opens on its own page)."""

import streamlit as st

from services.consoles import browser, bulk, common, widgets

user = common.logged_in_user()
st.header("Jobs")
widgets.show_flashes()
with common.queue() as queue:
    widgets.status_metrics(queue.stats())
    shown = browser.job_browser(queue, user, key="jobs")
    if shown is not None:
        # From a failure reason's link: ready to resubmit every job of that reason.
        bulk.filter_actions(queue, shown, user, "jobs", expanded=bool(shown.error_group))
browser.auto_refresh("jobs")
