"""The ops console (port 8502): the live system, consumers, and single-job actions.

Run it with ``pq console ops``; it needs a login (see ``auth.py``).
"""

import streamlit as st

from services.consoles import common, widgets

common.page_frame("pq ops", ":material/monitor_heart:")
user = common.logged_in("ops")
live = st.Page("views/ops_live.py", title="Live", icon=":material/monitor_heart:", default=True)
lookup = st.Page("views/job.py", title="Job by id", icon=":material/search:", url_path="job")
# Navigation comes before the login form, hidden until then: the page and query the
# URL asked for (an alert's /?job=42) are still there once the login succeeds.
page = st.navigation(
    [
        live,
        st.Page("views/queues.py", title="Queues", icon=":material/view_list:", url_path="queues"),
        lookup,
    ],
    position="sidebar" if user else "hidden",
)
if user is None:
    common.login_form("pq ops")
else:
    common.logout_button(user)
    widgets.page_or_job(page, user, own=[live, lookup])
