"""The ops console (port 8502): the live system, consumers, and single-job actions.

Run it with ``pq console ops``; it needs a login (see ``auth.py``).
"""

import streamlit as st

from services.consoles import common

common.page_frame("pq ops", ":material/monitor_heart:")
user = common.require_login("pq ops")
common.logout_button(user)
page = st.navigation(
    [
        st.Page("views/ops_live.py", title="Live", icon=":material/monitor_heart:", default=True),
        st.Page("views/queues.py", title="Queues", icon=":material/view_list:"),
        st.Page("views/job.py", title="Job by id", icon=":material/search:"),
    ]
)
page.run()
