"""Widgets both consoles share: counts, the job table, a job's detail, history and actions."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from pqcore import (
    InvalidArgument,
    Job,
    JobFilter,
    JobNotFound,
    JobState,
    PQError,
    Queue,
    Stats,
    Transition,
)
from pqcore.states import can
from services.consoles import filters
from services.consoles.auth import User
from services.consoles.common import age, when

# Operator actions as the consoles label them, in the order they are offered.
ACTIONS: dict[str, Transition] = {
    "Resubmit": Transition.RESUBMIT,
    "Cancel": Transition.CANCEL,
    "Mark done": Transition.MARK_DONE,
    "Mark failed": Transition.MARK_FAILED,
}
STATUS_LABELS = {
    JobState.PENDING: "pending",
    JobState.PROCESSING: "processing",
    JobState.DONE: "done",
    JobState.FAILED: "failed (retrying)",
    JobState.PERMANENTLY_FAILED: "dead letter",
    JobState.CANCELLED: "cancelled",
}
FLASH_KEY = "pq_flash"


# ------------------------------------------------------------------ messages across reruns


def flash(kind: str, message: str) -> None:
    """Show ``message`` after the rerun that follows an action."""
    st.session_state.setdefault(FLASH_KEY, []).append((kind, message))


def show_flashes() -> None:
    for kind, message in st.session_state.pop(FLASH_KEY, []):
        getattr(st, kind)(message)


# ------------------------------------------------------------------ counts


def status_metrics(stats: Stats) -> None:
    if stats.paused_queues:
        st.warning(
            "Paused (nothing is claimed from them): " + ", ".join(stats.paused_queues),
            icon=":material/pause_circle:",
        )
    columns = st.columns(8)
    counts = stats.counts
    values = [
        ("Pending", f"{counts['pending']:,}"),
        ("Processing", f"{counts['processing']:,}"),
        ("Done", f"{counts['done']:,}"),
        ("Failed (retrying)", f"{counts['failed']:,}"),
        ("Dead letter", f"{counts['permanently_failed']:,}"),
        ("Cancelled", f"{counts['cancelled']:,}"),
        ("Oldest pending", age(stats.oldest_pending_age)),
        ("Stalled", f"{stats.stalled:,}"),
    ]
    for column, (label, value) in zip(columns, values, strict=True):
        column.metric(label, value)


# ------------------------------------------------------------------ job table


def jobs_frame(jobs: Sequence[Job]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "id": j.id,
                "status": STATUS_LABELS[j.status],
                "queue": j.queue,
                "priority": j.priority,
                "attempts": f"{j.attempts}/{j.max_attempts}",
                "created (UTC)": when(j.created_at),
                "updated (UTC)": when(j.updated_at),
                "payload": j.data if len(j.data) <= 80 else j.data[:77] + "...",
                "error": (j.error or "")[:120],
            }
            for j in jobs
        ],
        columns=[
            "id",
            "status",
            "queue",
            "priority",
            "attempts",
            "created (UTC)",
            "updated (UTC)",
            "payload",
            "error",
        ],
    )


def jobs_table(jobs: Sequence[Job]) -> None:
    if not jobs:
        st.info("No jobs match.")
        return
    st.dataframe(jobs_frame(jobs), hide_index=True, width="stretch")


# ------------------------------------------------------------------ one job


def job_lookup(queue: Queue, user: User, key: str) -> None:
    """A job id box; shows the job, its history and the actions the user may take."""
    raw = st.text_input("Job id", key=f"{key}_id", max_chars=24, placeholder="e.g. 42")
    if not raw.strip():
        return
    try:
        job_id = filters.parse_job_id(raw)
    except filters.InputError as error:
        st.error(str(error))
        return
    job_detail(queue, job_id, user, key)


def job_detail(queue: Queue, job_id: int, user: User, key: str) -> None:
    try:
        job = queue.get(job_id)
        events = queue.history(job_id)
    except JobNotFound:
        st.warning(f"There is no job {job_id}.")
        return
    st.subheader(f"Job {job.id} — {STATUS_LABELS[job.status]}")
    left, right = st.columns([2, 3])
    with left:
        fields = job.to_dict()
        fields.pop("lease_token")  # the holder's secret: the console never needs it
        for name in (
            "run_at",
            "lease_expires_at",
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
        ):
            fields[name] = when(fields[name]) or None
        st.dataframe(
            pd.DataFrame({"field": list(fields), "value": [_text(v) for v in fields.values()]}),
            hide_index=True,
            width="stretch",
            height=35 * (len(fields) + 1) + 3,  # every field visible, no inner scrolling
        )
        if job.error:
            st.markdown("**Error**")
            st.code(job.error, language=None)
    with right:
        st.markdown("**History**")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "when (UTC)": when(e.at),
                        "action": e.action,
                        "from": e.from_status.value if e.from_status else "",
                        "to": e.to_status.value,
                        "by": e.actor,
                        "attempt": e.attempt,
                        "detail": e.detail or "",
                    }
                    for e in events
                ]
            ),
            hide_index=True,
            width="stretch",
        )
        job_actions(queue, job, user, key)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def job_actions(queue: Queue, job: Job, user: User, key: str) -> None:
    if not user.may("act"):
        return
    allowed = [label for label, t in ACTIONS.items() if can(t, job.status)]
    if not allowed:
        st.caption("No operator action applies to a job in this state.")
        return
    running = job.status is JobState.PROCESSING
    if running:
        st.caption(
            f"Running on consumer {job.consumer_id}. Cancel (or a mark) takes its lease: the"
            " consumer stops the job at its next heartbeat and its outcome is refused."
        )
    reason_text = st.text_input(
        "Reason (recorded in the history)", key=f"{key}_reason_{job.id}", max_chars=500
    )
    columns = st.columns(len(allowed))
    for column, label in zip(columns, allowed, strict=True):
        if column.button(label, key=f"{key}_{ACTIONS[label].value}_{job.id}"):
            try:
                reason = filters.clean_reason(reason_text)
                moved = queue.operator_action(
                    ACTIONS[label], job.id, actor=user.name, reason=reason
                )
            except filters.InputError as error:
                st.error(str(error))
                return
            except PQError as error:
                st.error(f"{label} failed: {error}")
                return
            note = f"; consumer {job.consumer_id} stops it at its next heartbeat" if running else ""
            flash("success", f"Job {job.id}: {label.lower()} → {moved.status.value}{note}")
            st.rerun()


# ------------------------------------------------------------------ many jobs (admin)


def selection_actions(queue: Queue, jobs: Sequence[Job], user: User, key: str) -> None:
    """Act on jobs picked from the current page."""
    if not user.may("bulk") or not jobs:
        return
    with st.expander("Act on selected jobs"):
        by_id = {j.id: j for j in jobs}
        picked = st.multiselect(
            "Jobs on this page",
            list(by_id),
            key=f"{key}_picked",
            format_func=lambda i: f"{i} · {by_id[i].status.value} · {by_id[i].data[:40]}",
        )
        label = st.selectbox("Action", list(ACTIONS), key=f"{key}_picked_action")
        if st.button("Apply to selected", key=f"{key}_picked_apply", disabled=not picked):
            applied, refused = 0, []
            for job_id in picked:
                try:
                    queue.operator_action(ACTIONS[label], job_id, actor=user.name)
                    applied += 1
                except PQError as error:
                    refused.append(f"{job_id}: {error}")
            flash("success", f"{label}: applied to {applied} of {len(picked)} selected jobs")
            if refused:
                flash("warning", "Not applied: " + "; ".join(refused[:10]))
            st.session_state.pop(f"{key}_picked", None)
            st.rerun()


def filter_actions(queue: Queue, flt: JobFilter, user: User, key: str) -> None:
    """Act on every job matching the filter: shows the count and asks for confirmation."""
    if not user.may("bulk"):
        return
    with st.expander("Act on all jobs matching the filter"):
        label = st.selectbox("Action", list(ACTIONS), key=f"{key}_all_action")
        transition = ACTIONS[label]
        eligible = [s for s in (flt.statuses or tuple(JobState)) if can(transition, s)]
        if not eligible:
            st.caption(f"No job matching the filter can take {label.lower()}.")
            return
        target = JobFilter(
            tuple(eligible), flt.queue, flt.text, flt.created_after, flt.created_before
        )
        try:
            count = queue.count_jobs(target)
        except (InvalidArgument, PQError) as error:
            st.error(str(error))
            return
        st.write(f"**{count:,}** jobs ({filters.describe(target)}) can take {label.lower()}.")
        # The confirmation belongs to this count: if the count changes before the click,
        # the box is a new, unticked one and the action waits for a new confirmation.
        confirmed = st.checkbox(
            f"Yes, {label.lower()} these {count:,} jobs", key=f"{key}_all_confirm_{label}_{count}"
        )
        clicked = st.button(
            f"{label} all matching",
            key=f"{key}_all_apply",
            disabled=not (confirmed and count),
            type="primary",
        )
        if clicked and not confirmed:  # a disabled button is only the browser's promise
            st.warning("The matching jobs changed; check the count and confirm again.")
        if clicked and confirmed:
            try:
                # No more than were confirmed.
                applied, skipped = queue.bulk_action(
                    transition, target, actor=user.name, limit=count
                )
            except PQError as error:
                st.error(f"{label} failed: {error}")
                return
            flash("success", f"{label}: applied to {applied:,} jobs ({skipped:,} had changed)")
            st.rerun()
