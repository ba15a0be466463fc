"""The job browser: filters, server-side sorting, keyset paging, and the actions on
what it shows. Everything it shows is in the URL (``urls``): filters, sort, the page's
cursor and number, the open job.

A page is one range read from its cursor (``Queue.page_jobs``): "Next" passes the
last row's place as ``after``, "Previous" the first row's as ``before``, so page
20,000 costs what page 2 costs and a URL names a page exactly. There is no OFFSET.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import streamlit as st

from pqcore import JobCursor, JobFilter, JobOrder, JobState, PQError, Queue, SortedPage
from services.consoles import bulk, common, filters, urls, widgets
from services.consoles.auth import User

PAGE_SIZES = (25, 50, 100, 200)
ORDER_LABELS = {
    JobOrder.CREATED: "created",
    JobOrder.PRIORITY: "priority",
    JobOrder.RUN_AT: "run at",
    JobOrder.UPDATED_AT: "last update",
    JobOrder.ATTEMPTS: "attempts",
}
# (descending, ascending) in words, per order.
DIRECTION_LABELS = {
    JobOrder.CREATED: ("newest first", "oldest first"),
    JobOrder.PRIORITY: ("highest first", "lowest first"),
    JobOrder.RUN_AT: ("latest first", "earliest first"),
    JobOrder.UPDATED_AT: ("latest first", "earliest first"),
    JobOrder.ATTEMPTS: ("most first", "fewest first"),
}
# The table's columns a click on the header sorts by.
COLUMN_ORDERS = {
    "id": JobOrder.CREATED,
    "priority": JobOrder.PRIORITY,
    "run at": JobOrder.RUN_AT,
    "updated": JobOrder.UPDATED_AT,
    "attempts": JobOrder.ATTEMPTS,
}
ORDER_COLUMNS = {order: column for column, order in COLUMN_ORDERS.items()}
REFRESH_CHOICES = {"off": 0, "every 5 s": 5, "every 15 s": 15, "every 60 s": 60}
MINUTE = "%Y-%m-%dT%H:%M"
# The URL's page position: a cursor and the page number it stands for.
AFTER, BEFORE, PAGE = "after", "before", "page"


def _datetime(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, MINUTE)


def _size(text: str) -> int:
    if int(text) not in PAGE_SIZES:
        raise ValueError(text)
    return int(text)


def bindings(key: str, fixed: bool) -> list[urls.Binding]:
    """Each filter widget and the URL parameter it is kept in."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None, second=0, microsecond=0)
    found = [
        urls.Binding(f"{key}_queue", "queue", "(all)"),
        urls.Binding(f"{key}_text", "q", ""),
        urls.Binding(
            f"{key}_time", "created", "any time",
            to_url=lambda v: filters.RANGE_SLUGS[v],
            from_url=lambda t: {s: n for n, s in filters.RANGE_SLUGS.items()}[t],
        ),
        urls.Binding(f"{key}_from", "from", now - dt.timedelta(hours=1),
                     to_url=lambda v: v.strftime(MINUTE), from_url=_datetime),
        urls.Binding(f"{key}_to", "to", now + dt.timedelta(minutes=15),
                     to_url=lambda v: v.strftime(MINUTE), from_url=_datetime),
        urls.Binding(f"{key}_sort", "sort", JobOrder.CREATED, to_url=str, from_url=JobOrder),
        urls.Binding(f"{key}_desc", "order", True, to_url=lambda v: "desc" if v else "asc",
                     from_url=lambda t: {"desc": True, "asc": False}[t]),
        urls.Binding(f"{key}_size", "rows", 50, from_url=_size),
        urls.Binding(f"{key}_refresh", "refresh", "off",
                     to_url=lambda v: str(REFRESH_CHOICES[v]),
                     from_url=lambda t: {str(s): n for n, s in REFRESH_CHOICES.items()}[t]),
    ]  # fmt: skip
    if not fixed:
        status = urls.Binding(
            f"{key}_status", "status", [], filters.states_to_url, filters.states_from_url
        )
        found.append(status)
    return found


def job_browser(
    queue: Queue, user: User, key: str, fixed: tuple[JobState, ...] = ()
) -> JobFilter | None:
    """The browser; returns the filter it shows (None when the input is not valid)."""
    bound = bindings(key, bool(fixed))
    urls.sync(bound, key)

    def changed() -> None:  # any filter, the sort or the page size: back to page 1
        changes: dict[str, str | None] = {AFTER: None, BEFORE: None, PAGE: None}
        if st.session_state.get(f"{key}_time") != "custom":
            changes.update({"from": None, "to": None})
        urls.store(bound, key, changes)

    flt = _filter_form(queue, key, fixed, changed)
    if flt is None:
        return None
    order: JobOrder = st.session_state[f"{key}_sort"]
    descending: bool = st.session_state[f"{key}_desc"]
    size: int = st.session_state[f"{key}_size"]
    values = urls.params()
    number = _page_number(values.get(PAGE))
    try:
        after = JobCursor.decode(values[AFTER]) if AFTER in values else None
        before = JobCursor.decode(values[BEFORE]) if BEFORE in values and not after else None
        page = queue.page_jobs(
            flt, order=order, descending=descending, limit=size, after=after, before=before
        )
    except PQError as error:  # a cursor mistyped in the URL, the database locked
        st.error(f"Cannot list jobs: {error}")
        return flt
    if before is not None and page.previous is None:
        number = 1  # went back to the start, whatever the URL said
    elif after is None and before is None:
        number = 1

    now = common.now()
    directions = DIRECTION_LABELS[order]
    st.caption(
        f"{filters.describe(flt)} · sorted by {ORDER_LABELS[order]},"
        f" {directions[0] if descending else directions[1]} · page {number}"
        f" · times relative to {common.when(now)} UTC"
        + (f" ({common.when_local(now)})" if common.when_local(now) else "")
    )
    generation = st.session_state.setdefault(f"{key}_table_generation", 0)
    widgets.jobs_table(
        page.jobs, now, f"{key}_table_{generation}", ORDER_COLUMNS.get(order), descending,
        lambda selection: _follow_click(selection, page, key, bound, order, descending),
    )  # fmt: skip
    _pager(page, number, key)
    bulk.selection_actions(page.jobs, user, key)
    return flt


def _page_number(raw: str | None) -> int:
    return int(raw) if raw and raw.isdigit() and 0 < int(raw) < 10**9 else 1


def _follow_click(
    clicked: dict[str, Any],
    page: SortedPage,
    key: str,
    bound: list[urls.Binding],
    order: JobOrder,
    descending: bool,
) -> None:
    """(A callback.) A click on a cell opens its job; on a header, sorts every job by
    that column (again: the other way round). The table is drawn afresh, unselected."""
    cells = list(clicked.get("cells") or [])
    columns = [str(c).rstrip(" ↓↑") for c in clicked.get("columns") or []]
    if not cells and not columns:
        return
    st.session_state[f"{key}_table_generation"] += 1
    if cells:
        row = int(cells[0][0])
        if 0 <= row < len(page.jobs):
            urls.push({urls.JOB: str(page.jobs[row].id)})
        return
    wanted = COLUMN_ORDERS.get(columns[0])
    if wanted is None:
        st.session_state[f"{key}_sort_note"] = (
            f"Jobs sort by {', '.join(COLUMN_ORDERS)}; not by {columns[0]}."
        )
        return
    st.session_state[f"{key}_desc"] = not descending if wanted is order else True
    st.session_state[f"{key}_sort"] = wanted
    urls.store(bound, key, {AFTER: None, BEFORE: None, PAGE: None})


def _pager(page: SortedPage, number: int, key: str) -> None:
    def go(changes: dict[str, str | None]) -> None:
        urls.push(changes)

    back, forward, _ = st.columns([1, 1, 6])
    previous_changes: dict[str, str | None]
    if number <= 2 or page.previous is None:
        previous_changes = {AFTER: None, BEFORE: None, PAGE: None}  # the first page
    else:
        previous_changes = {AFTER: None, BEFORE: page.previous.encode(), PAGE: str(number - 1)}
    back.button(
        "← Previous", key=f"{key}_prev", disabled=page.previous is None or number <= 1,
        on_click=go, args=(previous_changes,),
    )  # fmt: skip
    forward.button(
        "Next →", key=f"{key}_next", disabled=page.next is None, on_click=go,
        args=({AFTER: page.next.encode() if page.next else None, BEFORE: None,
               PAGE: str(number + 1)},),
    )  # fmt: skip


def _filter_form(
    queue: Queue, key: str, fixed: tuple[JobState, ...], changed: object
) -> JobFilter | None:
    on_change = changed  # every filter widget writes the URL when it changes
    columns = st.columns([3, 2, 2, 3])
    if fixed:
        columns[0].text_input(
            "Status", ", ".join(widgets.label(s) for s in fixed), disabled=True, key=f"{key}_st_f"
        )
        statuses: list[JobState] = list(fixed)
    else:
        statuses = columns[0].multiselect(
            "Status", list(JobState), key=f"{key}_status", format_func=widgets.label,
            on_change=on_change,  # type: ignore[arg-type]
        )  # fmt: skip
    names = ["(all)", *queue.queue_names()]
    if st.session_state.get(f"{key}_queue") not in names:
        names.append(st.session_state[f"{key}_queue"])  # from a URL: keep it, it lists nothing
    queue_name = columns[1].selectbox(
        "Queue",
        names,
        key=f"{key}_queue",
        on_change=on_change,  # type: ignore[arg-type]
    )
    time_range = columns[2].selectbox(
        "Created", list(filters.TIME_RANGES), key=f"{key}_time",
        on_change=on_change,  # type: ignore[arg-type]
    )  # fmt: skip
    text = columns[3].text_input(
        "Search payload and error", key=f"{key}_text", max_chars=filters.MAX_SEARCH,
        on_change=on_change,  # type: ignore[arg-type]
    )  # fmt: skip
    custom: tuple[dt.datetime | None, dt.datetime | None] = (None, None)
    if time_range == "custom":
        start_col, end_col = st.columns(2)
        start = start_col.datetime_input(
            "From (UTC)",
            key=f"{key}_from",
            on_change=on_change,  # type: ignore[arg-type]
        )
        end = end_col.datetime_input(
            "To (UTC)",
            key=f"{key}_to",
            on_change=on_change,  # type: ignore[arg-type]
        )
        custom = (start, end)
    order_column, direction_column, size_column, refresh_column, _ = st.columns([2, 2, 1, 2, 3])
    order = order_column.selectbox(
        "Sort by", list(JobOrder), key=f"{key}_sort", format_func=ORDER_LABELS.__getitem__,
        on_change=on_change,  # type: ignore[arg-type]
    )  # fmt: skip
    words = DIRECTION_LABELS[order]
    direction_column.selectbox(
        "Order", [True, False], key=f"{key}_desc",
        format_func=lambda d: words[0] if d else words[1],
        on_change=on_change,  # type: ignore[arg-type]
    )  # fmt: skip
    size_column.selectbox(
        "Rows",
        PAGE_SIZES,
        key=f"{key}_size",
        on_change=on_change,  # type: ignore[arg-type]
    )
    refresh_column.selectbox(
        "Auto-refresh", list(REFRESH_CHOICES), key=f"{key}_refresh",
        on_change=on_change,  # type: ignore[arg-type]
    )  # fmt: skip
    note = st.session_state.pop(f"{key}_sort_note", None)
    if note:
        st.info(note)
    pattern = urls.params().get("error")
    if pattern:
        left, right = st.columns([6, 1])
        left.info(f"Only jobs whose error reads like: `{pattern}`", icon=":material/filter_alt:")
        if right.button("Show all errors", key=f"{key}_error_clear"):
            urls.push({"error": None, AFTER: None, BEFORE: None, PAGE: None})
            st.rerun()
    try:
        return filters.build_filter(
            statuses,
            None if queue_name == "(all)" else queue_name,
            text,
            time_range,
            time.time(),
            custom,
            pattern,
        )
    except filters.InputError as error:
        st.error(str(error))
        return None


def auto_refresh(key: str) -> None:
    """Reruns the page every few seconds when the browser's Auto-refresh asks for it.

    Those reruns are not activity: an open page does not keep an idle session alive."""
    seconds = REFRESH_CHOICES.get(str(st.session_state.get(f"{key}_refresh", "off")), 0)
    st.session_state[f"{key}_drawn"] = time.monotonic()
    if not seconds:
        return

    @st.fragment(run_every=seconds)
    def tick() -> None:
        if time.monotonic() - st.session_state.get(f"{key}_drawn", 0.0) >= seconds - 0.5:
            st.session_state[common.AUTO_RERUN_KEY] = True
            st.rerun(scope="app")

    tick()


def refresh_control(key: str) -> None:
    """An Auto-refresh choice kept in the URL (``?refresh=15``), for pages without the
    browser's filters; ``auto_refresh(key)`` at the end of the page acts on it."""
    bound = [
        urls.Binding(
            f"{key}_refresh", "refresh", "off",
            to_url=lambda v: str(REFRESH_CHOICES[v]),
            from_url=lambda t: {str(s): n for n, s in REFRESH_CHOICES.items()}[t],
        )
    ]  # fmt: skip
    urls.sync(bound, key)
    column, _ = st.columns([1, 5])
    column.selectbox(
        "Auto-refresh",
        list(REFRESH_CHOICES),
        key=f"{key}_refresh",
        on_change=lambda: urls.store(bound, key, {}),
    )
