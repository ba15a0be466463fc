"""Widgets both consoles share: counts, the job table, a job's page (every field, the
whole payload and error, the history) and the actions on one job (on many: bulk.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import streamlit as st
from streamlit.navigation.page import StreamlitPage

from pqcore import (
    Job,
    JobChanged,
    JobEvent,
    JobNotFound,
    JobState,
    PQError,
    Queue,
    Stats,
    Transition,
    open_queue,
)
from pqcore.exceptions import past_tense
from pqcore.states import can
from services.consoles import common, filters, taskview, urls
from services.consoles.auth import User
from services.consoles.common import age, relative, when, when_full

# Operator actions as the consoles label them, in the order they are offered.
ACTIONS: dict[str, Transition] = {
    "Resubmit": Transition.RESUBMIT,
    "Cancel": Transition.CANCEL,
    "Mark done": Transition.MARK_DONE,
    "Mark failed": Transition.MARK_FAILED,
}
# One name per state, everywhere: tables, filters, captions, the history, messages.
STATUS_LABELS = filters.STATE_NAMES
FLASH_KEY = "pq_flash"


def label(state: JobState | None) -> str:
    return "" if state is None else STATUS_LABELS[JobState(state)]


# ------------------------------------------------------------------ messages across reruns


def flash(kind: str, message: str, area: str = "page") -> None:
    """Show ``message`` after the rerun that follows an action, where ``area`` is drawn."""
    st.session_state.setdefault(FLASH_KEY, []).append((area, kind, message))


def flashes_pending() -> list[tuple[str, str, str]]:
    return list(st.session_state.get(FLASH_KEY, []))


def show_flashes(area: str = "page") -> None:
    kept = []
    for where, kind, message in st.session_state.pop(FLASH_KEY, []):
        if where == area:
            getattr(st, kind)(message)
        else:
            kept.append((where, kind, message))
    if kept:
        st.session_state[FLASH_KEY] = kept


def with_queue(action: Callable[[Queue], None], area: str = "page") -> None:
    """Run ``action`` on a fresh queue handle from a widget callback (which runs before
    the page and cannot stop it): a storage problem becomes one message."""
    try:
        with open_queue(common.database(), create=False) as queue:
            action(queue)
    except PQError as error:
        flash("error", f"The queue reported an error: {error}", area)


# ------------------------------------------------------------------ counts


def status_metrics(stats: Stats) -> None:
    if stats.paused_queues:
        st.warning(
            "Paused (nothing is claimed from them): " + ", ".join(stats.paused_queues),
            icon=":material/pause_circle:",
        )
    counts = stats.counts
    values = [(STATUS_LABELS[s].capitalize(), f"{counts[s.value]:,}") for s in STATUS_LABELS]
    values += [("Waiting for other jobs", f"{stats.waiting:,}")] if stats.waiting else []
    values += [("Oldest pending", age(stats.oldest_pending_age)), ("Stalled", f"{stats.stalled:,}")]
    # Boxes as wide as their labels, wrapping onto a second row on a narrow screen, so
    # no label is ever cut ("Failed (retryi…").
    with st.container(horizontal=True, gap="medium"):
        for name, value in values:
            st.metric(name, value, width="content")


# ------------------------------------------------------------------ job table

TABLE_COLUMNS = {
    # column: (width in pixels or None for the rest, what it is). The error gets what is
    # left: about 300 pixels on a 1280-pixel screen, the sidebar open.
    "id": (62, "the job's id: click a row to open the job"),
    "status": (108, "the job's state"),
    "queue": (80, "its queue"),
    "priority": (68, "higher runs first"),
    "attempts": (72, "attempts made / allowed"),
    "run at": (82, "when it is (or was) due to run, from now"),
    "updated": (82, "its last change, from now"),
    "task / payload": (140, "the task call, or the payload (whole on the job's page)"),
    "error": (None, "the last error (whole on the job's page)"),
}


def jobs_frame(jobs: Sequence[Job], now: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "id": j.id,
                "status": taskview.status_text(j),
                "queue": j.queue,
                "priority": j.priority,
                "attempts": f"{j.attempts}/{j.max_attempts}",
                "run at": relative(j.run_at, now),
                "updated": relative(j.updated_at, now),
                "task / payload": taskview.what(j),
                "error": common_error_line(j.error),
            }
            for j in jobs
        ],
        columns=list(TABLE_COLUMNS),
    )


def common_error_line(error: str | None) -> str:
    """The line of an error a table shows (a traceback's last line)."""
    if not error:
        return ""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    if lines and lines[0].startswith("Traceback (most recent call last)"):
        return lines[-1].strip()[:300]
    return (lines[0] if lines else "")[:300]


def jobs_table(
    jobs: Sequence[Job],
    now: float,
    key: str,
    sorted_column: str | None,
    descending: bool,
    clicked: Callable[[dict[str, Any]], None],
) -> None:
    """The table of a page of jobs. A click on a cell or a header calls ``clicked``
    with Streamlit's selection (``cells``: [(row, column)], ``columns``: [name]), in a
    callback, before the page is drawn again."""
    if not jobs:
        st.info("No jobs match.")
        return
    frame = jobs_frame(jobs, now)
    arrow = " ↓" if descending else " ↑"
    config: dict[str, Any] = {
        name: st.column_config.Column(
            name + (arrow if name == sorted_column else ""),
            width=width if width is not None else "large",
            help=meaning,
        )
        for name, (width, meaning) in TABLE_COLUMNS.items()
    }
    config["id"] = st.column_config.NumberColumn(
        "id" + (arrow if sorted_column == "id" else ""), width=TABLE_COLUMNS["id"][0], format="%d",
        help=TABLE_COLUMNS["id"][1],
    )  # fmt: skip

    def selected() -> None:
        state = st.session_state.get(key)
        selection = dict(state.get("selection", {})) if state else {}
        clicked(selection)

    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config=config,
        on_select=selected,
        # A click on a cell opens its job; a click on a header sorts every job by it
        # (column selection replaces the grid's own sort of the rows on the page).
        selection_mode=["single-cell", "single-column"],
        key=key,
        height=min(36 * (len(frame) + 1) + 3, 640),
    )


# ------------------------------------------------------------------ one job


def job_lookup(queue: Queue, user: User, key: str) -> None:
    """A job id box bound to ``?job=``: shows the job, its history and the actions."""
    current = urls.job_id()
    if f"{key}_id" not in st.session_state or st.session_state.get(f"{key}_shown") != current:
        st.session_state[f"{key}_id"] = "" if current is None else str(current)
        st.session_state[f"{key}_shown"] = current

    def typed() -> None:
        raw = str(st.session_state.get(f"{key}_id", "")).strip()
        try:
            urls.push({urls.JOB: str(filters.parse_job_id(raw)) if raw else None})
        except filters.InputError as error:
            st.session_state[f"{key}_error"] = str(error)

    st.text_input("Job id", key=f"{key}_id", max_chars=24, placeholder="e.g. 42", on_change=typed)
    problem = st.session_state.pop(f"{key}_error", None)
    if problem:
        st.error(problem)
        return
    if urls.job_param() is not None and current is None:
        st.error(f"{urls.job_param()[:40]!r} is not a job id (a positive whole number)")
        return
    if current is not None:
        job_detail(queue, current, user, key)


def page_or_job(page: StreamlitPage, user: User, own: Sequence[StreamlitPage]) -> None:
    """Run the page, unless the URL opens a job (``?job=ID``, alert links do) on a page
    that does not show jobs itself (``own``): then the job's page is drawn in its place."""
    raw = urls.job_param()
    if raw is None or any(page is p for p in own):
        page.run()
        return
    job_id = urls.job_id()
    if job_id is None:
        st.error(f"{raw[:40]!r} is not a job id (a positive whole number)")
        if st.button("← Back", key="job_back"):
            urls.push({urls.JOB: None})
            st.rerun()
        return
    show_flashes()
    with common.queue() as queue:
        job_view(queue, user, job_id, key="job")


def scroll_to(heading: str) -> None:
    """Scroll the page to the first heading that starts with ``heading`` (once per
    text: the script runs when it is new)."""
    st.html(
        "<script>(() => { const wanted = " + json.dumps(heading) + ";"
        " const find = () => Array.from(document.querySelectorAll('[data-testid=stHeading]'))"
        ".find(h => h.innerText.startsWith(wanted));"
        " let tries = 0; const go = () => { const h = find();"
        " if (h) h.scrollIntoView({block: 'start'}); else if (tries++ < 20) setTimeout(go, 100); };"
        " go(); })();</script>",
        unsafe_allow_javascript=True,
    )


def job_view(queue: Queue, user: User, job_id: int, key: str) -> None:
    """A job's own page (``?job=ID`` on any page): back to where it was opened from."""
    if st.button("← Back", key=f"{key}_back", help="back to the list (the browser's Back too)"):
        urls.push({urls.JOB: None})
        st.rerun()
    job_detail(queue, job_id, user, key)


def job_detail(queue: Queue, job_id: int, user: User, key: str) -> None:
    try:
        job = queue.get(job_id)
        events = queue.history(job_id)
    except JobNotFound:
        st.warning(f"There is no job {job_id}.")
        return
    now = common.now()
    st.subheader(f"Job {job.id} — {STATUS_LABELS[job.status]}")
    # What an action just did, and the actions, come first: in view after the click.
    show_flashes(f"job-{job.id}")
    job_actions(job, events[-1].id if events else None, user, key)
    job_summary(job, now)
    taskview.task_section(queue, job, now)
    st.markdown("**Payload**")
    pretty, is_json = payload_text(job.data)
    st.code(pretty, language="json" if is_json else None, wrap_lines=True)
    if job.error:
        st.markdown("**Error**")
        st.code(job.error, language=None, wrap_lines=True)
    st.markdown(f"**History** ({len(events)} events, oldest first)")
    history_table(events)


def payload_text(data: str) -> tuple[str, bool]:
    """The whole payload: pretty-printed when it is a JSON object or array."""
    stripped = data.strip()
    if stripped[:1] in ("{", "["):
        try:
            return json.dumps(json.loads(stripped), indent=2, ensure_ascii=False), True
        except ValueError:
            pass
    return data, False


def job_summary(job: Job, now: float) -> None:
    times = [
        ("created", job.created_at), ("run at", job.run_at), ("started", job.started_at),
        ("finished", job.finished_at), ("updated", job.updated_at),
        ("lease expires", job.lease_expires_at),
    ]  # fmt: skip
    rows = [
        ("status", STATUS_LABELS[job.status]),
        ("queue", job.queue),
        ("priority", str(job.priority)),
        ("attempts", f"{job.attempts} of {job.max_attempts}"),
        ("consumer", job.consumer_id or ""),
        ("dedupe key", job.dedupe_key or ""),
        ("concurrency key", job.concurrency_key or ""),
    ]
    rows = [(name, value) for name, value in rows if value]
    rows += [(name, when_full(value, now)) for name, value in times if value is not None]
    left, right = st.columns(2)
    half = (len(rows) + 1) // 2
    for column, part in ((left, rows[:half]), (right, rows[half:])):
        column.table(
            pd.DataFrame(part, columns=["field", "value"]), hide_index=True, hide_header=True
        )


def history_table(events: Sequence[JobEvent]) -> None:
    st.table(
        pd.DataFrame(
            [
                {
                    "when (UTC)": when(e.at),
                    "action": e.action.replace("_", " "),
                    "from": label(e.from_status),
                    "to": label(e.to_status),
                    "by": e.actor,
                    "attempt": e.attempt,
                    "detail": e.detail or "",
                }
                for e in events
            ],
            columns=["when (UTC)", "action", "from", "to", "by", "attempt", "detail"],
        ),
        hide_index=True,
    )


def changed_message(error: JobChanged) -> str:
    """ "Job 3544 was cancelled by carol at … UTC (… local, 2m ago)": what happened."""
    return (
        f"Job {error.job_id} was {past_tense(error.changed_action)} by {error.changed_by}"
        f" at {when_full(error.changed_at)}; it is now {label(JobState(error.current))}."
        f" Nothing was done: the page shows the job as it is now."
    )


def job_actions(job: Job, seen_event: int | None, user: User, key: str) -> None:
    if not user.may("act"):
        return
    allowed = [name for name, t in ACTIONS.items() if can(t, job.status)]
    if not allowed:
        st.caption("No operator action applies to a job in this state.")
        return
    running = job.status is JobState.PROCESSING
    if running:
        st.caption(
            f"Running on consumer {job.consumer_id}. Cancel (or a mark) takes its lease: the"
            " consumer stops the job at its next heartbeat and its outcome is refused."
        )
    reason_key = f"{key}_reason_{job.id}"
    area = f"job-{job.id}"

    def act(name: str) -> None:
        try:
            reason = filters.clean_reason(str(st.session_state.get(reason_key, "")))
        except filters.InputError as error:
            flash("error", str(error), area)
            return

        def apply(queue: Queue) -> None:
            try:
                moved = queue.operator_action(
                    ACTIONS[name], job.id, actor=user.name, reason=reason, seen_event=seen_event
                )
            except JobChanged as error:
                flash("warning", changed_message(error), area)
                return
            except PQError as error:
                flash("error", f"{name} failed: {error}", area)
                return
            note = f"; consumer {job.consumer_id} stops it at its next heartbeat" if running else ""
            flash("success", f"Job {job.id}: {name.lower()} → {label(moved.status)}{note}", area)
            st.session_state[reason_key] = ""  # done: the box is empty for the next one

        with_queue(apply, area)

    st.text_input("Reason (recorded in the history)", key=reason_key, max_chars=500)
    with st.container(horizontal=True):
        for name in allowed:
            st.button(name, key=f"{key}_{ACTIONS[name].value}_{job.id}", on_click=act, args=(name,))
