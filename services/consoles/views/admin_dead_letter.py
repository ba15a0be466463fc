"""Admin: the dead-letter queue (jobs out of attempts or failed for good) and redrive."""

import streamlit as st

from pqcore import JobState
from services.consoles import browser, bulk, charts, common, widgets

user = common.logged_in_user()
st.header("Dead letter")
st.caption(
    "Jobs out of attempts, failed with a non-retryable error, or marked failed. "
    "Redrive = resubmit: back to pending with a fresh attempt budget."
)
widgets.show_flashes()
with common.queue() as queue:
    count, reasons = st.columns([1, 5])
    count.metric("Dead-letter jobs", f"{queue.stats().dead_letter:,}")
    with reasons.expander(
        "Most frequent reasons (newest 10,000): each opens its jobs", expanded=True
    ):
        charts.failure_groups(queue, None, dead_only=True, limit=5)
    shown = browser.job_browser(queue, user, key="dead", fixed=(JobState.PERMANENTLY_FAILED,))
    if shown is not None:
        bulk.filter_actions(queue, shown, user, "dead", expanded=bool(shown.error_group))
browser.auto_refresh("dead")
