"""Charts of the queue, built from pqcore's bounded chart queries."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from pqcore import JobState, Queue, Stats
from services.consoles import filters, urls
from services.consoles.widgets import STATUS_LABELS

SAMPLE = 10_000
HEIGHT = 300
STATUS_COLORS = ["#4c78a8", "#f58518", "#54a24b", "#eeca3b", "#e45756", "#9d9da1"]


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def counts_by_status(stats: Stats) -> None:
    """Bars on a log scale (symlog: 0 stays 0), each with its count written on it, so
    3 dead-lettered jobs are as visible as a million done ones."""
    frame = pd.DataFrame(
        {
            "status": [STATUS_LABELS[s] for s in STATUS_LABELS],
            "jobs": [stats.counts[s.value] for s in STATUS_LABELS],
        }
    )
    top = max(1, int(frame["jobs"].max()))
    ticks = [10**k for k in range(len(str(top)) + 1) if 10**k <= top * 2]
    base = alt.Chart(frame).encode(
        # Every state named, on two lines where it is two words ("dead / letter").
        x=alt.X(
            "status:N",
            sort=None,
            title=None,
            axis=alt.Axis(labelAngle=0, labelOverlap=False, labelExpr="split(datum.label, ' ')"),
        ),
        y=alt.Y(
            "jobs:Q",
            title="jobs (log scale)",
            scale=alt.Scale(type="symlog", constant=1, domain=[0, top * 2], nice=False),
            axis=alt.Axis(values=ticks, labelOverlap=False, labelExpr="format(datum.value, ',')"),
        ),
        tooltip=["status", alt.Tooltip("jobs:Q", format=",")],
    )
    bars = base.mark_bar().encode(
        color=alt.Color(
            "status:N",
            legend=None,
            scale=alt.Scale(domain=list(STATUS_LABELS.values()), range=STATUS_COLORS),
        )
    )
    labels = base.mark_text(dy=-8, fontSize=13).encode(text=alt.Text("jobs:Q", format=","))
    st.altair_chart((bars + labels).properties(height=HEIGHT), width="stretch")


def throughput(queue: Queue, now: float, minutes: int, bucket: int = 60) -> None:
    buckets = queue.throughput(now - minutes * 60, bucket_seconds=bucket)
    if not buckets:
        st.info(f"Nothing enqueued, completed or failed in the last {minutes} minutes.")
        return
    frame = pd.DataFrame(
        [
            {
                "time": pd.Timestamp(b.start, unit="s", tz="UTC"),
                "enqueued": b.enqueued,
                "completed": b.completed,
                "failed": b.failed,
            }
            for b in buckets
        ]
    ).melt("time", var_name="kind", value_name="jobs")
    color = alt.Color(
        "kind:N",
        scale=alt.Scale(
            domain=["enqueued", "completed", "failed"], range=["#4c78a8", "#54a24b", "#e45756"]
        ),
    )
    y = alt.Y("jobs:Q", title=f"jobs per {bucket // 60} min" if bucket >= 60 else "jobs")
    tooltip = ["time:T", "kind", "jobs"]
    base = alt.Chart(frame)
    if len(buckets) < 4:  # a few buckets read better as grouped bars
        chart = base.mark_bar().encode(
            x=alt.X("utchoursminutes(time):O", title="UTC"),
            xOffset="kind:N",
            y=y,
            color=color,
            tooltip=tooltip,
        )
    else:
        chart = base.mark_line(point=True).encode(
            x=alt.X("utcyearmonthdatehoursminutes(time):T", title="UTC"),
            y=y,
            color=color,
            tooltip=tooltip,
        )
    st.altair_chart(chart.properties(height=HEIGHT), width="stretch")


def attempts(queue: Queue) -> None:
    histogram = queue.attempts_histogram(sample=SAMPLE)
    if not histogram:
        st.info("No jobs yet.")
        return
    frame = pd.DataFrame({"attempts": list(histogram), "jobs": list(histogram.values())})
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("attempts:O", title="attempts made"), y="jobs:Q", tooltip=["attempts", "jobs"]
        )
    )
    st.altair_chart(chart.properties(height=HEIGHT), width="stretch")


def failure_reasons(queue: Queue) -> None:
    """The most frequent reasons, errors that differ only in paths and numbers as one."""
    groups = queue.failure_groups(limit=10, sample=SAMPLE)
    if not groups:
        st.info("No failed jobs.")
        return
    frame = pd.DataFrame({"reason": [g.pattern for g in groups], "jobs": [g.jobs for g in groups]})
    chart = (
        alt.Chart(frame)
        .mark_bar(color="#e45756")
        .encode(
            y=alt.Y("reason:N", sort="-x", title=None, axis=alt.Axis(labelLimit=420)),
            x=alt.X("jobs:Q"),
            tooltip=["reason", "jobs"],
        )
    )
    st.altair_chart(chart.properties(height=HEIGHT), width="stretch")


def failure_groups(
    queue: Queue, target: str | None, *, dead_only: bool = False, limit: int = 10
) -> None:
    """Each reason with its count and a link to exactly its jobs: on page ``target`` (a
    page script), or on this page (None), where "act on all matching" resubmits them."""
    groups = queue.failure_groups(limit=limit, sample=SAMPLE)
    if dead_only:
        groups = [g for g in groups if g.dead]
    if not groups:
        st.caption("No failed or dead-lettered jobs.")
        return
    states = [JobState.PERMANENTLY_FAILED] if dead_only else [
        JobState.FAILED, JobState.PERMANENTLY_FAILED
    ]  # fmt: skip
    for n, group in enumerate(groups):
        count, link = st.columns([1, 12], vertical_alignment="center")
        count.markdown(f"**{group.dead if dead_only else group.jobs:,}**")
        query = {"error": group.pattern, "status": filters.states_to_url(states)}
        tip = f"{group.exception or 'error'} · e.g. {group.example[:300]}"
        if target is not None:
            link.page_link(
                target, label=group.pattern, query_params=query, help=tip,
                icon=":material/filter_alt:",
            )  # fmt: skip
        else:  # a link to this same page would lose its query: a button sets it
            query.pop("status")
            link.button(
                group.pattern, key=f"reason_{n}", help=tip, type="tertiary",
                icon=":material/filter_alt:", on_click=urls.push,
                args=({**query, "after": None, "before": None, "page": None},),
            )  # fmt: skip


def processing_times(queue: Queue) -> None:
    seconds = queue.processing_seconds(sample=SAMPLE)
    if not seconds:
        st.info("No completed jobs yet.")
        return
    series = pd.Series(seconds)
    p50, p90, p99 = series.quantile([0.5, 0.9, 0.99])
    cols = st.columns(4)
    cols[0].metric("jobs measured", f"{len(series):,}")
    cols[1].metric("p50", duration(p50))
    cols[2].metric("p90", duration(p90))
    cols[3].metric("p99", duration(p99))
    # Binned here, so the browser gets 40 bars rather than 10,000 durations.
    upper = max(float(series.quantile(0.99)), 1e-3)
    counts, edges = np.histogram(series.clip(upper=upper), bins=40, range=(0.0, upper))
    frame = pd.DataFrame({"from": edges[:-1], "to": edges[1:], "jobs": counts})
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("from:Q", bin="binned", title="processing seconds (top 1% in the last bar)"),
            x2="to:Q",
            y=alt.Y("jobs:Q", title="jobs"),
            tooltip=["from", "to", "jobs"],
        )
    )
    st.altair_chart(chart.properties(height=HEIGHT), width="stretch")
