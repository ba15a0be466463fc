"""Admin: the queue in charts."""

import time

import streamlit as st

from services.consoles import charts, common

common.logged_in_user()
st.header("Statistics")
window = st.columns([1, 4])[0].selectbox(
    "Throughput window", ["last hour", "last 6 hours", "last 24 hours"], key="stats_window"
)
minutes, bucket = {"last hour": (60, 60), "last 6 hours": (360, 300), "last 24 hours": (1440, 900)}[
    window
]
with common.queue() as queue:
    stats = queue.stats()
    left, right = st.columns(2)
    with left:
        st.subheader("Jobs by status")
        charts.counts_by_status(stats)
    with right:
        st.subheader("Throughput")
        charts.throughput(queue, time.time(), minutes, bucket)
    left, right = st.columns(2)
    with left:
        st.subheader("Attempts (newest 10,000 jobs tried)")
        charts.attempts(queue)
    with right:
        st.subheader("Processing time (newest 10,000 done)")
        charts.processing_times(queue)
    st.subheader("Top failure reasons (newest 10,000 failed and dead-letter jobs)")
    left, right = st.columns(2)
    with left:
        charts.failure_reasons(queue)
    with right:
        st.caption("Each reason opens its jobs, ready for “act on all matching”:")
        charts.failure_groups(queue, "views/admin_jobs.py")
