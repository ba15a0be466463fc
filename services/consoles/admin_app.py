"""The admin console (port 8501): every job, its history, actions, statistics.

Run it with ``pq console admin``; it needs a login (see ``auth.py``).
"""

import streamlit as st

from services.consoles import common

common.page_frame("pq admin", "🗂️")
user = common.require_login("pq admin")
common.logout_button(user)
page = st.navigation(
    [
        st.Page("views/admin_jobs.py", title="Jobs", icon="📋", default=True),
        st.Page("views/admin_dead_letter.py", title="Dead letter", icon="☠️"),
        st.Page("views/admin_statistics.py", title="Statistics", icon="📊"),
        st.Page("views/job.py", title="Job by id", icon="🔎"),
    ]
)
page.run()
