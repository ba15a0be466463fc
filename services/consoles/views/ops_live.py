"""Ops: the live system. The numbers refresh in place every few seconds (a fragment),
so the job lookup below keeps what the user typed and where they scrolled."""

import os
import time

import pandas as pd
import streamlit as st

from pqcore import ConsumerState, JobFilter, JobState
from services.consoles import charts, common, taskview, urls, widgets

SILENT_AFTER = 30.0  # seconds without a heartbeat before a live consumer is flagged
RUNNING_SHOWN = 20


def refresh_seconds() -> float:
    try:
        return min(60.0, max(1.0, float(os.environ.get("PQ_CONSOLE_REFRESH_SECONDS", "3"))))
    except ValueError:
        return 3.0


user = common.logged_in_user()
st.header("Live")
widgets.show_flashes()


@st.fragment(run_every=refresh_seconds())
def live() -> None:
    if common.current_user() is None:  # the session timed out while the page sat open
        st.rerun(scope="app")
    now = time.time()
    with common.queue() as queue:
        stats = queue.stats()
        # Jobs waiting while nobody claims: every other number here can look normal.
        health = common.claim_watch().health(queue, stats=stats)
        if health.unclaimed:
            st.warning(health.describe(), icon=":material/warning:")
        widgets.status_metrics(stats)
        recent = queue.throughput(now - 60, bucket_seconds=60)
        enqueued = sum(b.enqueued for b in recent)
        completed = sum(b.completed for b in recent)
        failed = sum(b.failed for b in recent)
        columns = st.columns(4)
        columns[0].metric("Enqueued, last 60 s", f"{enqueued:,}")
        columns[1].metric("Completed, last 60 s", f"{completed:,}")
        columns[2].metric("Failed, last 60 s", f"{failed:,}")
        columns[3].metric("Total jobs", f"{stats.total:,}")
        left, right = st.columns([3, 2])
        with left:
            st.subheader("Throughput, last 15 minutes")
            charts.throughput(queue, now, 15)
        with right:
            st.subheader(f"Stalled jobs ({stats.stalled:,})")
            stalled = queue.stalled_jobs(limit=50)
            if stalled:
                st.dataframe(
                    pd.DataFrame(
                        [
                            {
                                "id": j.id,
                                "consumer": j.consumer_id,
                                "lease expired": common.age(now - (j.lease_expires_at or now)),
                                "task / payload": taskview.what(j, 60),
                            }
                            for j in stalled
                        ]
                    ),
                    hide_index=True,
                    width="stretch",
                )
            else:
                st.caption("None: every processing job holds a live lease.")
        running = queue.list_jobs(JobFilter(statuses=(JobState.PROCESSING,)), limit=RUNNING_SHOWN)
        st.subheader(f"Running jobs ({stats.counts[JobState.PROCESSING.value]:,})")
        if running.jobs:
            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "id": j.id,
                            "queue": j.queue,
                            "consumer": j.consumer_id,
                            "running for": common.age(now - (j.started_at or now)),
                            "attempt": f"{j.attempts}/{j.max_attempts}",
                            "progress": taskview.progress_cell(j),
                            "says": j.progress_message or "",
                            "task / payload": taskview.what(j, 80),
                        }
                        for j in running.jobs
                    ]
                ),
                hide_index=True,
                width="stretch",
                column_config={
                    "progress": st.column_config.ProgressColumn(
                        "progress",
                        min_value=0.0,
                        max_value=1.0,
                        format="percent",
                        help="what the task last reported (ctx.progress)",
                    ),
                },
            )
            st.caption(
                f"Newest {RUNNING_SHOWN} shown. To stop one, look it up below and cancel it:"
                " its consumer stops it at its next heartbeat."
            )
        else:
            st.caption("No job is running.")
        st.subheader("Consumers")
        consumers = queue.consumers()
    if not consumers:
        st.caption("No consumer has registered yet.")
        return
    rows = []
    for c in consumers:
        silent = now - c.last_heartbeat
        flag = (
            "DEAD"
            if c.state == ConsumerState.DEAD
            else (
                "silent"
                if c.state in (ConsumerState.IDLE, ConsumerState.BUSY) and silent > SILENT_AFTER
                else ""
            )
        )
        rows.append(
            {
                "consumer": c.id,
                "host": c.host,
                "pid": c.pid,
                "state": c.state,
                "flag": flag,
                "current job": "" if c.current_job_id is None else str(c.current_job_id),
                "since heartbeat": common.age(silent),
                "jobs done": c.jobs_done,
                "jobs failed": c.jobs_failed,
                "queues": c.queues,
            }
        )
    frame = pd.DataFrame(rows)
    flagged = frame.style.apply(
        lambda row: ["background-color: #fde2e1" if row["flag"] else "" for _ in row], axis=1
    )
    st.dataframe(flagged, hide_index=True, width="stretch")
    st.caption(f"Refreshes every {refresh_seconds():g}s · {common.when(now)} UTC")


live()
st.divider()
st.subheader("Look up a job")
with common.queue() as queue:
    widgets.job_lookup(queue, user, key="ops_lookup")
requested = urls.job_id()
if requested is not None:
    # An alert's link (/?job=42): the job, not the numbers above it, is what to see.
    widgets.scroll_to(f"Job {requested} — ")
