"""Reading the queue: jobs, their history, counts, lists and the consoles' charts.

Each chart query is bounded (an index range or the newest ``sample`` rows), so it costs
the same at a million jobs as at a thousand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pqcore.core import QueueCore
from pqcore.driver import Session, Sql
from pqcore.exceptions import DatabaseReadOnly, InvalidArgument
from pqcore.failures import error_pattern, exception_name, pattern_like
from pqcore.models import (
    Consumer,
    FailureGroup,
    Job,
    JobCursor,
    JobEvent,
    JobFilter,
    JobOrder,
    Page,
    QueueThroughput,
    SortedPage,
    Stats,
    ThroughputBucket,
)
from pqcore.states import JobState
from pqcore.validation import (
    check_id,
    check_limit,
    check_queue,
    check_sample,
    finite,
)

# stats() folds PostgreSQL's final-state count deltas back into one row per
# (queue, status) once there are this many, keeping the sum it reads short.
FOLD_DELTAS_AT = 1000

# What page_jobs sorts by: fixed column names, never text from a caller.
ORDER_COLUMNS = {
    JobOrder.CREATED: "id",
    JobOrder.PRIORITY: "priority",
    JobOrder.RUN_AT: "run_at",
    JobOrder.UPDATED_AT: "updated_at",
    JobOrder.ATTEMPTS: "attempts",
}
INTEGER_COLUMNS = frozenset({"id", "priority", "attempts"})
# Sort columns whose index leaves pending jobs out (migration 0007), and the terms that
# split a page along it: the first written as the index's own WHERE, so that SQLite's
# planner, which matches a partial index by its terms, sees that it may use it.
SKIP_PENDING_COLUMNS = frozenset({"priority", "updated_at", "attempts"})
PAST_PENDING = f"status <> '{JobState.PENDING.value}'"
ONLY_PENDING = f"status = '{JobState.PENDING.value}'"
WALK_SHARE = 10  # see _walk_order_index


class Reading(QueueCore):
    def get(self, job_id: int) -> Job:
        """The job, or ``JobNotFound``."""
        job_id = check_id(job_id)
        return self.driver.read(lambda s: self._read_job(s, job_id))

    def history(self, job_id: int) -> list[JobEvent]:
        """Every transition of the job, oldest first. ``JobNotFound`` if it never existed."""
        job_id = check_id(job_id)

        def body(session: Session) -> list[JobEvent]:
            rows = session.all("events_for_job", {"job_id": job_id})
            if not rows:
                self._read_job(session, job_id)  # raises JobNotFound
            return [JobEvent.from_row(r) for r in rows]

        return self.driver.read(body, snapshot=True)

    def stats(self, queue: str | None = None) -> Stats:
        """Counts per status (every state present), oldest runnable pending age, stalled count."""
        if queue is not None:
            check_queue(queue)
        scope = "" if queue is None else "_for_queue"
        params = {"now": self._now(), "queue": queue}

        def body(session: Session) -> tuple[list[Any], Any, Any, list[str], Any]:
            rows = session.all("counts_by_status" + scope, params)
            oldest = session.one("oldest_runnable_pending_age" + scope, params)
            stalled = session.one("stalled_count" + scope, params)
            paused = [r["queue"] for r in session.all("controls_all") if r["paused"]]
            waiting = session.one("waiting_count" + scope, params)
            return (rows, oldest and oldest["age"], stalled["n"] if stalled else 0, paused,
                    waiting["n"] if waiting else 0)  # fmt: skip

        rows, age, stalled, paused, waiting = self.driver.read(body, snapshot=True)
        if sum(int(r["deltas"]) for r in rows) >= FOLD_DELTAS_AT:
            try:
                self.driver.write(lambda s: s.run("count_deltas_fold"), single_statement=True)
            except DatabaseReadOnly:  # a read-only replica: sums stay correct, just longer
                pass
        counts = {state.value: 0 for state in JobState}
        for row in rows:
            counts[row["status"]] += int(row["n"])
        return Stats(
            counts=counts,
            oldest_pending_age=max(0.0, float(age)) if age is not None else None,
            stalled=int(stalled),
            dead_letter=counts[JobState.PERMANENTLY_FAILED.value],
            total=sum(counts.values()),
            paused_queues=[q for q in paused if queue is None or q == queue],
            waiting=int(waiting),
        )

    def list_jobs(
        self,
        flt: JobFilter | None = None,
        *,
        limit: int = 50,
        before_id: int | None = None,
        oldest_first: bool = False,
        after_id: int | None = None,
    ) -> Page:
        """Jobs matching the filter, newest first; keyset pagination via ``before_id``.

        ``oldest_first=True`` lists in ascending id order instead; its cursor is passed
        back as ``after_id``. Never an OFFSET: every page costs the same at any depth.
        """
        check_limit(limit, 1000, minimum=1)
        where, params = filter_sql(flt or JobFilter())
        if before_id is not None:
            where.append("id < :before_id")
            params["before_id"] = check_id(before_id)
        if after_id is not None:
            where.append("id > :after_id")
            params["after_id"] = check_id(after_id)
        statement = Sql(
            "SELECT * FROM jobs WHERE "
            + " AND ".join(where)
            + (" ORDER BY id ASC" if oldest_first else " ORDER BY id DESC")
            + " LIMIT :limit"
        )
        params["limit"] = limit + 1
        jobs = self.driver.read(lambda s: s.jobs(statement, params))
        return Page(jobs[:limit], jobs[limit - 1].id if len(jobs) > limit else None)

    def page_jobs(
        self,
        flt: JobFilter | None = None,
        *,
        order: JobOrder = JobOrder.CREATED,
        descending: bool = True,
        limit: int = 50,
        after: JobCursor | None = None,
        before: JobCursor | None = None,
    ) -> SortedPage:
        """A page of the jobs matching the filter, sorted by ``order`` (ties by id).

        Keyset paging in both directions: ``after`` gives the page that follows a row,
        ``before`` the page that ends just before one. Each page is read from its cursor
        on (``jobs_by_*`` indexes), never with an OFFSET: page 20,000 costs what page 2
        costs. Pending jobs are outside the priority, last-update and attempts indexes
        (an enqueue would write each): a page in those orders sorts the pending jobs
        that match beside the index's rows, at a cost that grows with the backlog.
        """
        check_limit(limit, 1000, minimum=1)
        order = JobOrder(order)
        if after is not None and before is not None:
            raise InvalidArgument("give after or before, not both")
        flt = flt or JobFilter()
        column = ORDER_COLUMNS[order]
        where, params = filter_sql(flt, unindexed_status=self._walk_order_index(flt, order))
        cursor = after if after is not None else before
        backward = before is not None
        # Backward reads walk away from the cursor the other way, then turn the rows round.
        walk_descending = descending != backward
        direction, compare = ("DESC", "<") if walk_descending else ("ASC", ">")
        params["limit"] = limit + 1
        keys = f"{column} {direction}, id {direction}" if column != "id" else f"id {direction}"
        if cursor is not None:
            params["cursor_id"] = check_id(cursor.id)
        if cursor is not None and column != "id":
            value = finite(cursor.value, "the cursor's value")
            params["cursor_value"] = int(value) if column in INTEGER_COLUMNS else value

        def page_of(conditions: list[str]) -> str:
            return _sorted_page(" AND ".join(conditions), column, keys, compare, direction, cursor)

        if column not in SKIP_PENDING_COLUMNS:
            text = page_of(where)
        else:  # its index leaves pending jobs out (migration 0007): those are sorted apart
            wanted = {JobState(st) for st in flt.statuses} if flt.statuses else set(JobState)
            parts: list[str] = []
            if wanted - {JobState.PENDING}:
                parts.append(page_of([*where, PAST_PENDING]))
            if JobState.PENDING in wanted:
                parts.append(page_of([*where, ONLY_PENDING]))
            text = parts[0] if len(parts) == 1 else (
                f"SELECT * FROM (SELECT * FROM ({parts[0]}) AS past_pending"
                f" UNION ALL SELECT * FROM ({parts[1]}) AS pending_jobs) AS page"
                f" ORDER BY {keys} LIMIT :limit"
            )  # fmt: skip
        rows = self.driver.read(lambda s: s.jobs(Sql(text), params))
        more = len(rows) > limit
        jobs = rows[:limit]
        if backward:
            jobs.reverse()
        if not jobs:
            return SortedPage([], None, None)

        def place(job: Job) -> JobCursor:
            return JobCursor(float(getattr(job, column)), job.id)

        if backward:
            return SortedPage(jobs, place(jobs[-1]), place(jobs[0]) if more else None)
        return SortedPage(
            jobs, place(jobs[-1]) if more else None, place(jobs[0]) if after is not None else None
        )

    def _walk_order_index(self, flt: JobFilter, order: JobOrder) -> bool:
        """Whether a status filter should be checked row by row along the sort's index
        rather than read from (status, id) and sorted: when the statuses cover at least
        a tenth of the jobs, fifty of them are found within a few hundred index rows,
        while sorting them all would cost a second at a million. The counts come from
        the counts the triggers keep (no scan)."""
        if order is JobOrder.CREATED or not flt.statuses:
            return False
        if flt.text or flt.error_group or flt.created_after or flt.created_before:
            return False  # the other filters decide the cost; leave it to the planner
        scope = "" if flt.queue is None else "_for_queue"
        rows = self._select("counts_by_status" + scope, {"queue": flt.queue})
        total = sum(int(r["n"]) for r in rows)
        wanted = {JobState(s).value for s in flt.statuses}
        matched = sum(int(r["n"]) for r in rows if r["status"] in wanted)
        return total > 0 and matched * WALK_SHARE >= total

    def count_jobs(self, flt: JobFilter | None = None) -> int:
        """How many jobs match the filter."""
        flt = flt or JobFilter()
        if (
            flt.text is None
            and flt.created_after is None
            and flt.created_before is None
            and not flt.error_group
        ):
            stats = self.stats(flt.queue)  # from the counts: no table scan
            wanted = flt.statuses or tuple(JobState)
            return sum(stats.counts[JobState(s).value] for s in wanted)
        where, params = filter_sql(flt)
        statement = Sql("SELECT count(*) AS n FROM jobs WHERE " + " AND ".join(where))
        row = self.driver.read(lambda s: s.one(statement, params))
        return int(row["n"]) if row else 0

    # ---------------------------------------------------------------- console charts

    def _select(self, query: str, params: dict[str, Any] | None = None) -> list[Any]:
        return self.driver.read(lambda s: s.all(query, params or {}))

    def clock_now(self) -> float:
        """The queue's current time, the clock every lease and retry is compared with
        (PostgreSQL: the server's, not this host's)."""
        return float(self._select("clock_now", {"now": self._now()})[0]["now"])

    def queue_names(self) -> list[str]:
        """Names of the queues that hold jobs, sorted."""
        return [row["queue"] for row in self._select("queue_names")]

    def stalled_jobs(self, *, limit: int = 50) -> list[Job]:
        """Processing jobs whose lease has expired (not yet rescued), longest expired first."""
        params = {"now": self._now(), "limit": check_limit(limit, 1000)}
        return [Job.from_row(row) for row in self._select("expired_leases", params)]

    def throughput(self, since: float, *, bucket_seconds: int = 60) -> list[ThroughputBucket]:
        """Transitions per time bucket from the history, from ``since`` on, oldest first.

        Buckets start at multiples of ``bucket_seconds``; empty buckets are left out.
        """
        since = finite(since, "since")
        if isinstance(bucket_seconds, bool) or not isinstance(bucket_seconds, int):
            raise InvalidArgument("bucket_seconds must be an integer")
        if not 1 <= bucket_seconds <= 86_400:
            raise InvalidArgument("bucket_seconds must be from 1 to 86400")
        rows = self._select("throughput", {"since": since, "bucket": bucket_seconds})
        return [
            ThroughputBucket(
                float(r["start"]), int(r["enqueued"]), int(r["completed"]), int(r["failed"])
            )
            for r in rows
        ]

    def failure_reasons(self, *, limit: int = 10, sample: int = 10_000) -> list[tuple[str, int]]:
        """The most frequent errors (their first 160 characters) among the newest ``sample``
        failed jobs and the newest ``sample`` dead-lettered jobs, most frequent first."""
        params = {"limit": check_limit(limit, 1000), "sample": check_sample(sample)}
        return [(r["reason"], int(r["n"])) for r in self._select("failure_reasons", params)]

    def failure_groups(self, *, limit: int = 10, sample: int = 10_000) -> list[FailureGroup]:
        """The most frequent failure reasons among the newest ``sample`` failed and the
        newest ``sample`` dead-lettered jobs, errors that differ only in paths, numbers
        and ids taken as one (``pqcore.failures``), most frequent first. Each group's
        ``pattern`` is a filter: ``JobFilter(error_group=pattern)``."""
        check_limit(limit, 1000)
        rows = self._select("failure_samples", {"sample": check_sample(sample)})
        groups: dict[str, list[Any]] = {}
        patterns: dict[str, str] = {}  # the same error text is common: normalised once
        for row in rows:  # newest first within each state
            error = row["error"]
            pattern = patterns.get(error)
            if pattern is None:
                pattern = patterns[error] = error_pattern(error)
            entry = groups.setdefault(pattern, [0, 0, row["error"]])
            entry[0] += 1
            entry[1] += row["status"] == JobState.PERMANENTLY_FAILED.value
        ranked = sorted(groups.items(), key=lambda item: (-item[1][0], item[0]))[:limit]
        return [
            FailureGroup(pattern, exception_name(pattern), n, int(dead), str(example)[:500])
            for pattern, (n, dead, example) in ranked
        ]

    def queue_throughput(self, since: float) -> dict[str, QueueThroughput]:
        """Per queue, the jobs enqueued, completed and failed from ``since`` on (from the
        history: its cost grows with the transitions in the window, not with the table)."""
        since = finite(since, "since")
        rows = self._select("throughput_by_queue", {"since": since})
        return {
            r["queue"]: QueueThroughput(
                r["queue"], int(r["enqueued"]), int(r["completed"]), int(r["failed"])
            )
            for r in rows
        }

    def attempts_histogram(self, *, sample: int = 10_000) -> dict[int, int]:
        """attempts -> how many of the newest ``sample`` jobs tried at least once made that
        many attempts (the current attempt count: a resubmit starts it again)."""
        rows = self._select("attempts_histogram", {"sample": check_sample(sample)})
        return {int(r["attempts"]): int(r["n"]) for r in rows}

    def processing_seconds(self, *, sample: int = 10_000) -> list[float]:
        """Seconds from the last start to the finish of the newest ``sample`` done jobs
        (those a consumer started), newest first."""
        rows = self._select("processing_seconds", {"sample": check_sample(sample)})
        return [float(r["seconds"]) for r in rows]

    # ---------------------------------------------------------------- history cursors

    def dedupe_keys_known(self, keys: Sequence[str]) -> set[str]:
        """The subset of ``keys`` carried by some job in *any* state (finished ones too).

        The producer's reconciliation uses it: enqueue's dedupe only covers active jobs.
        May scan the jobs table; meant for a start-up check, not a hot path."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return set()
        check_limit(len(wanted))
        return {r["dedupe_key"] for r in self._select("dedupe_keys_known", {"keys": wanted})}

    def last_event_id(self) -> int:
        """The id of the newest history row (0 if none): a cursor for ``events_after``."""
        rows = self._select("last_event_id")
        return int(rows[0]["id"]) if rows else 0

    def events_after(
        self, after_id: int, *, to_status: JobState | None = None, limit: int = 1000
    ) -> list[JobEvent]:
        """History rows with an id above ``after_id`` (optionally only those entering
        ``to_status``), oldest first: lets the manager notice every dead-lettered job."""
        check_limit(limit)
        if isinstance(after_id, bool) or not isinstance(after_id, int) or after_id < 0:
            raise InvalidArgument("after_id must be a non-negative integer")
        params: dict[str, Any] = {"after_id": after_id, "limit": limit}
        name = "events_after"
        if to_status is not None:
            name, params["to_status"] = "events_after_to_status", JobState(to_status).value
        return [JobEvent.from_row(r) for r in self._select(name, params)]

    # ---------------------------------------------------------------- consumers, leadership

    def consumers(self) -> list[Consumer]:
        return [Consumer.from_row(row) for row in self._select("consumers_all")]

    def leader(self, name: str) -> tuple[str, float] | None:
        """(holder, expires_at) of an unexpired leadership, else None."""
        rows = self._select("leader_get", {"name": name, "now": self._now()})
        return (rows[0]["holder"], float(rows[0]["expires_at"])) if rows else None


def filter_sql(
    flt: JobFilter, *, unindexed_status: bool = False
) -> tuple[list[str], dict[str, Any]]:
    """WHERE fragments (fixed text) and their parameters for a job filter.

    ``unindexed_status`` keeps SQLite's planner off the (status, id) index (the
    ``{unindexed}`` macro), so a sorted page walks its sort's index instead."""
    where: list[str] = []
    params: dict[str, Any] = {}
    status = "{unindexed}status" if unindexed_status else "status"
    if len(flt.statuses) == 1:
        where.append(f"{status} = :status")  # lets the planner walk (status, id) in order
        params["status"] = JobState(flt.statuses[0]).value
    elif flt.statuses:
        # Enum values, never user text: written into the statement, where both planners
        # read an IN list best.
        states = sorted({JobState(s).value for s in flt.statuses})
        where.append(f"{status} IN (" + ", ".join(f"'{s}'" for s in states) + ")")
    if flt.queue is not None:
        where.append("queue = :queue")
        params["queue"] = flt.queue
    if flt.text:
        escaped = flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("(data LIKE :text ESCAPE '\\' OR error LIKE :text ESCAPE '\\')")
        params["text"] = f"%{escaped}%"
    if flt.created_after is not None:
        where.append("created_at >= :created_after")
        params["created_after"] = float(flt.created_after)
    if flt.created_before is not None:
        where.append("created_at < :created_before")
        params["created_before"] = float(flt.created_before)
    if flt.error_group:
        # A whole line of the error matches the group's pattern: the text between two
        # newlines, once the error is wrapped in newlines.
        where.append(
            "(CAST(:nl AS TEXT) || error || CAST(:nl AS TEXT)) LIKE :error_group ESCAPE '\\'"
        )
        params["nl"] = "\n"
        params["error_group"] = "%\n" + pattern_like(flt.error_group) + "\n%"
    if not where:
        where.append("1 = 1")
    return where, params


def _sorted_page(
    base: str, column: str, keys: str, compare: str, direction: str, cursor: JobCursor | None
) -> str:
    """One keyset page of the jobs matching ``base``, in ``keys`` order from ``cursor``."""
    if cursor is None:
        return f"SELECT * FROM jobs WHERE {base} ORDER BY {keys} LIMIT :limit"
    if column == "id":
        return (
            f"SELECT * FROM jobs WHERE {base} AND id {compare} :cursor_id"
            f" ORDER BY {keys} LIMIT :limit"
        )
    # Two clean ranges of the (column, id) index, the rows tied with the cursor and those
    # beyond its value; (column, id) < (v, i) would be read as column <= v and skip rows
    # one by one: page 20,000 would cost 20,000 pages.
    return (
        "SELECT * FROM ("
        f" SELECT * FROM (SELECT * FROM jobs WHERE {base} AND {column} = :cursor_value"
        f" AND id {compare} :cursor_id ORDER BY id {direction} LIMIT :limit) AS tied"
        " UNION ALL"
        f" SELECT * FROM (SELECT * FROM jobs WHERE {base}"
        f" AND {column} {compare} :cursor_value ORDER BY {keys} LIMIT :limit) AS beyond"
        f") AS page ORDER BY {keys} LIMIT :limit"
    )
