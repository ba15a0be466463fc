"""What a job is as its users wrote it: the task call its payload holds, the result it
returned, the progress it reports while it runs, the jobs it waits for (issue 13).

Everything here reads pqcore's own decoders (``taskcall``, ``Job.result_value``,
``Queue.dependencies``), so the consoles show what ``pq show`` shows."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from pqcore import Dependency, InvalidArgument, Job, JobState, Queue, taskcall
from services.consoles import filters
from services.consoles.common import relative, when_full

CALL_WIDTH = 200  # characters of a task call in a table cell


def what(job: Job, width: int = CALL_WIDTH) -> str:
    """A table's "task / payload" cell: ``send_welcome(42, locale='de')`` for a task,
    the payload itself otherwise, cut to ``width``."""
    text = taskcall.describe(job.data, width=width)
    return text if len(text) <= width else text[: width - 3] + "..."


def status_text(job: Job) -> str:
    """The state, with what it means right now: waiting for other jobs, how far along."""
    name = filters.STATE_NAMES[job.status]
    if job.waiting:
        return f"{name} · waits for {job.waiting_for}"
    if job.status is JobState.PROCESSING and job.progress is not None:
        return f"{name} {job.progress:.0%}"
    return name


def progress_cell(job: Job) -> float | None:
    return None if job.progress is None else max(0.0, min(1.0, job.progress))


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


def task_section(queue: Queue, job: Job, now: float) -> None:
    """The job page's part above the raw payload: call, arguments, progress, result,
    dependencies. Draws nothing for a plain payload with none of these."""
    try:
        call = taskcall.decode(job.data)
    except InvalidArgument as error:
        st.warning(f"The payload looks like a task call but is not a valid one: {error}")
        call = None
    if call is not None:
        st.markdown(f"**Task** `{call.task}`")
        st.code(call.describe(width=4000), language="python", wrap_lines=True)
        if call.args or call.kwargs:
            arguments: dict[str, Any] = {}
            if call.args:
                arguments["args"] = list(call.args)
            if call.kwargs:
                arguments["kwargs"] = dict(call.kwargs)
            with st.expander("Arguments (JSON)", expanded=len(json.dumps(arguments)) > 120):
                st.code(pretty_json(arguments), language="json", wrap_lines=True)
    if job.progress is not None:
        fraction = max(0.0, min(1.0, job.progress))
        said = f" — {job.progress_message}" if job.progress_message else ""
        at = f" (reported {relative(job.progress_at, now)})" if job.progress_at else ""
        st.markdown("**Progress**")
        st.progress(fraction, text=f"{fraction:.0%}{said}{at}")
    if job.result is not None:
        st.markdown("**Result**")
        try:
            shown = pretty_json(job.result_value())
        except ValueError:
            shown = job.result
        st.code(shown, language="json", wrap_lines=True)
    if job.waiting_for or job.has_dependents:
        dependencies_section(queue, job)


def dependencies_section(queue: Queue, job: Job) -> None:
    waits_for = queue.dependencies(job.id)
    waited_by = queue.dependents(job.id)
    if job.waiting:
        st.info(
            f"Waiting: not claimable until {job.waiting_for} more of the jobs it waits for finish.",
            icon=":material/hourglass_top:",
        )
    for title, rows, other in (
        ("Waits for", waits_for, "depends_on"),
        ("Waited for by", waited_by, "job_id"),
    ):
        if rows:
            st.markdown(f"**{title}** ({len(rows)})")
            link = st.column_config.LinkColumn(
                "job", display_text=r"\?job=(\d+)", help="open that job"
            )
            st.dataframe(
                dependency_frame(rows, other), hide_index=True, width="stretch",
                column_config={"job": link},
            )  # fmt: skip


def dependency_frame(rows: Sequence[Dependency], other: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "job": f"?job={getattr(d, other)}",
                "now": "purged" if d.status is None else filters.STATE_NAMES[d.status],
                "ended": "" if d.resolution is None else filters.STATE_NAMES[d.resolution],
                "if it fails": d.on_failure.value.replace("_", " "),
                "resolved": when_full(d.resolved_at) if d.resolved_at else "",
            }
            for d in rows
        ],
        columns=["job", "now", "ended", "if it fails", "resolved"],
    )
