"""The admin console (port 8501): every job, its history, actions, statistics.

Run it with ``pq console admin``; it needs a login (see ``auth.py``).
"""

import streamlit as st

from services.consoles import common

common.page_frame("pq admin", ":material/inventory_2:")
user = common.require_login("pq admin")
common.logout_button(user)
page = st.navigation(
    [
        st.Page("views/admin_jobs.py", title="Jobs", icon=":material/list_alt:", default=True),
        st.Page("views/admin_dead_letter.py", title="Dead letter", icon=":material/report:"),
        st.Page("views/queues.py", title="Queues", icon=":material/view_list:"),
        st.Page("views/admin_schedules.py", title="Schedules", icon=":material/schedule:"),
        st.Page("views/admin_settings.py", title="Settings", icon=":material/tune:"),
        st.Page("views/admin_statistics.py", title="Statistics", icon=":material/bar_chart:"),
        st.Page("views/job.py", title="Job by id", icon=":material/search:"),
    ]
)
page.run()
