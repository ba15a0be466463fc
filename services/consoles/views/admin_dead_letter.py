"""Admin: the dead-letter queue (permanently failed jobs) and their redrive."""

import streamlit as st

from pqcore import JobState
from services.consoles import browser, common, widgets

user = common.logged_in_user()
st.header("Dead-letter queue")
st.caption(
    "Jobs out of attempts, failed with a non-retryable error, or marked failed. "
    "Redrive = resubmit: back to pending with a fresh attempt budget."
)
widgets.show_flashes()
with common.queue() as queue:
    st.metric("Dead-lettered jobs", f"{queue.stats().dead_letter:,}")
    reasons = queue.failure_reasons(limit=5)
    if reasons:
        st.markdown("**Most frequent errors** (newest 10,000 failed jobs)")
        for reason, n in reasons:
            st.text(f"{n:>7,}  {reason}")
    browser.job_browser(queue, user, key="dead", fixed=(JobState.PERMANENTLY_FAILED,))
