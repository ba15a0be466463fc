"""The admin and ops consoles: two Streamlit apps over pqcore.

``admin_app.py`` (port 8501) browses, filters and steers every job, with bulk actions
and statistics; ``ops_app.py`` (port 8502) is the live view of the running system.
Both require a login (``auth.py``); all data goes through pqcore.
"""
