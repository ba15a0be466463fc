"""The job browser: filters, sorting, keyset paging, and the actions on what it shows.

Paging keeps a stack of cursors (the last id of each page) in the session, so
"Next" and "Previous" cost one indexed range read at any depth; there is no OFFSET.
"""

from __future__ import annotations

import datetime as dt
import time

import streamlit as st

from pqcore import JobFilter, JobState, PQError, Queue
from services.consoles import filters, widgets
from services.consoles.auth import User

PAGE_SIZES = (25, 50, 100, 200)
SORTS = ("newest first", "oldest first")


def job_browser(queue: Queue, user: User, key: str, fixed: tuple[JobState, ...] = ()) -> None:
    flt, sort, size = _filter_form(queue, key, fixed)
    if flt is None:
        return
    signature = repr((flt, sort, size))
    if st.session_state.get(f"{key}_signature") != signature:
        # A new filter starts from the first page.
        st.session_state[f"{key}_signature"] = signature
        st.session_state[f"{key}_cursors"] = []
    cursors: list[int] = st.session_state[f"{key}_cursors"]
    cursor = cursors[-1] if cursors else None
    oldest_first = sort == "oldest first"
    try:
        page = queue.list_jobs(
            flt,
            limit=size,
            oldest_first=oldest_first,
            before_id=None if oldest_first else cursor,
            after_id=cursor if oldest_first else None,
        )
    except PQError as error:
        st.error(f"Cannot list jobs: {error}")
        return

    st.caption(f"{filters.describe(flt)} · {sort} · page {len(cursors) + 1}")
    widgets.jobs_table(page.jobs)
    back, forward, _ = st.columns([1, 1, 6])
    if back.button("← Previous", key=f"{key}_prev", disabled=not cursors):
        cursors.pop()
        st.rerun()
    if forward.button("Next →", key=f"{key}_next", disabled=page.next_cursor is None):
        cursors.append(int(page.next_cursor or 0))
        st.rerun()

    if page.jobs:
        by_id = {j.id: j for j in page.jobs}
        chosen = st.selectbox(
            "Open a job from this page",
            [None, *by_id],
            key=f"{key}_open",
            format_func=lambda i: "—" if i is None else f"{i} · {by_id[i].status.value}",
        )
        if chosen is not None and chosen in by_id:
            widgets.job_detail(queue, chosen, user, key=f"{key}_detail")
    widgets.selection_actions(queue, page.jobs, user, key)
    widgets.filter_actions(queue, flt, user, key)


def _filter_form(
    queue: Queue, key: str, fixed: tuple[JobState, ...]
) -> tuple[JobFilter | None, str, int]:
    columns = st.columns([3, 2, 3, 2, 2, 1])
    if fixed:
        statuses = [s.value for s in fixed]
        columns[0].text_input("Status", ", ".join(statuses), disabled=True, key=f"{key}_st_f")
    else:
        statuses = columns[0].multiselect(
            "Status",
            [s.value for s in JobState],
            key=f"{key}_status",
            format_func=lambda v: widgets.STATUS_LABELS[JobState(v)],
        )
    names = ["(all)", *queue.queue_names()]
    queue_name = columns[1].selectbox("Queue", names, key=f"{key}_queue")
    text = columns[2].text_input(
        "Search payload and error", key=f"{key}_text", max_chars=filters.MAX_SEARCH
    )
    time_range = columns[3].selectbox("Created", list(filters.TIME_RANGES), key=f"{key}_time")
    sort = columns[4].selectbox("Sort", SORTS, key=f"{key}_sort")
    size = columns[5].selectbox("Rows", PAGE_SIZES, index=1, key=f"{key}_size")
    custom: tuple[dt.datetime | None, dt.datetime | None] = (None, None)
    if time_range == "custom":
        start_col, end_col = st.columns(2)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None, second=0, microsecond=0)
        start = start_col.datetime_input(
            "From (UTC)", now - dt.timedelta(hours=1), key=f"{key}_from"
        )
        end = end_col.datetime_input("To (UTC)", now + dt.timedelta(minutes=15), key=f"{key}_to")
        custom = (start, end)
    try:
        flt = filters.build_filter(
            statuses,
            None if queue_name == "(all)" else queue_name,
            text,
            time_range,
            time.time(),
            custom,
        )
    except filters.InputError as error:
        st.error(str(error))
        return None, sort, size
    return flt, sort, int(size)
