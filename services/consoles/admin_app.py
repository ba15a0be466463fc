"""The admin console (port 8501): every job, its history, actions, statistics.

Run it with ``pq console admin``; it needs a login (see ``auth.py``).
"""

import streamlit as st

from services.consoles import common, widgets

common.page_frame("pq admin", ":material/inventory_2:")
user = common.logged_in("admin")
jobs = st.Page("views/admin_jobs.py", title="Jobs", icon=":material/list_alt:", default=True)
lookup = st.Page("views/job.py", title="Job by id", icon=":material/search:", url_path="job")
# Navigation comes before the login form, hidden until then: the page and query the
# URL asked for (/job?job=42, filters) are still there once the login succeeds.
page = st.navigation(
    [
        jobs,
        st.Page(
            "views/admin_dead_letter.py",
            title="Dead letter",
            icon=":material/report:",
            url_path="dead-letter",
        ),
        st.Page("views/queues.py", title="Queues", icon=":material/view_list:", url_path="queues"),
        st.Page(
            "views/admin_schedules.py",
            title="Schedules",
            icon=":material/schedule:",
            url_path="schedules",
        ),
        st.Page(
            "views/admin_settings.py",
            title="Settings",
            icon=":material/tune:",
            url_path="settings",
        ),
        st.Page(
            "views/admin_statistics.py",
            title="Statistics",
            icon=":material/bar_chart:",
            url_path="statistics",
        ),
        lookup,
    ],
    position="sidebar" if user else "hidden",
)
if user is None:
    common.login_form("pq admin")
else:
    common.logout_button(user)
    widgets.page_or_job(page, user, own=[lookup])
