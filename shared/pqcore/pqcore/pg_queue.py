"""The PostgreSQL backend: one database server shared by consumers on many hosts.

Same state machine, history and fencing as the SQLite backend (the decisions come from
``pqcore.policy``); what differs is how rows are locked. Claims pick rows with
``FOR UPDATE SKIP LOCKED``, so concurrent consumers never wait for one another, and
``LISTEN/NOTIFY`` wakes idle consumers the moment work arrives.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pqcore import sql
from pqcore.base import PersistentQInterface, check_consumer_id
from pqcore.config import QueueSettings
from pqcore.exceptions import (
    DatabaseReadOnly,
    InvalidArgument,
    InvalidTransition,
    JobNotFound,
    LeaseLost,
)
from pqcore.models import (
    EnqueueRequest,
    Job,
    JobEvent,
    JobFilter,
    Outcome,
    Page,
    SettleResult,
    Stats,
)
from pqcore.pg_db import Connection, PostgresDatabase
from pqcore.pg_listen import Listener
from pqcore.pg_queries import (
    audit,
    filter_sql,
    insert_deduped,
    insert_many,
    next_run_at,
    refuse_taken_dedupe_key,
)
from pqcore.policy import (
    Move,
    check_id,
    check_operator,
    operator_move,
    out_of_attempts_move,
    outcome_move,
    rescue_move,
    retry_move,
)
from pqcore.states import FINAL_STATES, JobState, Transition, can, target

Q = sql.load("postgresql")
# wait_for_jobs re-checks at least this often even without a notification (a NOTIFY
# lost to a broken listener connection, a delayed job coming due).
WAIT_POLL_SECONDS = 1.0
BULK_CHUNK = 500
# stats() folds the final-state count deltas back into one row per (queue, status)
# once there are this many, keeping the sum it reads short.
FOLD_DELTAS_AT = 1000


class PostgresQueue(PersistentQInterface):
    """The queue in the PostgreSQL database at ``url`` (``postgresql://user:pw@host/db``).

    The database must exist; pq creates its tables on first use. ``create`` is accepted
    for symmetry with SQLite, where it decides whether a missing file may be created:
    pq never creates a PostgreSQL database, so a missing one is ``DatabaseNotFound``.
    """

    backend = "postgresql"

    def __init__(
        self,
        url: str,
        settings: QueueSettings | None = None,
        *,
        create: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(settings or QueueSettings(db=url), clock)
        self.db = PostgresDatabase(url, self.settings, create=create)
        self.url = url
        self.listener = Listener(lambda: self.db.connect(autocommit=True))

    def __repr__(self) -> str:
        return f"PostgresQueue({self.db.where!r})"

    def close(self) -> None:
        self.listener.close()
        self.db.close()

    # ---------------------------------------------------------------- producers

    def enqueue_many(
        self, items: Iterable[str | EnqueueRequest], *, actor: str = "producer"
    ) -> list[Job]:
        now = self.clock()
        rows = [self._validated(item, now) for item in items]  # all checked before any write
        if not rows:
            return []

        def body(conn: Connection) -> list[Job]:
            jobs: list[Job] = []
            plain: list[dict[str, Any]] = []  # consecutive rows without a dedupe key
            for values in [*rows, None]:
                if values is not None and values["dedupe_key"] is None:
                    plain.append(values)
                    continue
                if plain:  # one statement for the run, keeping ids in input order
                    jobs += insert_many(conn, plain, actor, now)
                    plain = []
                if values is not None:
                    jobs.append(insert_deduped(conn, values, actor))
            queues = sorted({job.queue for job in jobs})
            conn.execute(Q["notify_jobs"], {"queues": queues})
            return jobs

        return self.db.write(body)

    # ---------------------------------------------------------------- consumers

    def settle_and_claim(
        self,
        outcomes: Sequence[Outcome],
        consumer_id: str,
        *,
        limit: int = 1,
        queues: Sequence[str] | None = None,
        lease_seconds: float | None = None,
    ) -> SettleResult:
        self._check_limit(limit)
        names = self._check_queues(queues)
        lease = self._lease_seconds(lease_seconds)
        check_consumer_id(consumer_id)

        def body(conn: Connection) -> SettleResult:
            now = self.clock()
            settled, lost = [], []
            for outcome in outcomes:
                try:  # a lost lease changed nothing (its guarded UPDATE matched no row)
                    settled.append(self._apply_outcome(conn, outcome, consumer_id, now))
                except (LeaseLost, JobNotFound):
                    lost.append(outcome.job_id)
            claimed = self._claim(conn, consumer_id, limit, names, lease, now) if limit else []
            return SettleResult(settled, lost, claimed)

        return self.db.write(body, single_statement=not outcomes)

    def _settle_one(self, outcome: Outcome) -> Job:
        return self.db.write(
            lambda conn: self._apply_outcome(conn, outcome, None, self.clock()),
            single_statement=outcome.kind == "done",  # then it reads only after a miss
        )

    def _claim(
        self,
        conn: Connection,
        consumer_id: str,
        limit: int,
        queues: list[str] | None,
        lease: float,
        now: float,
    ) -> list[Job]:
        params: dict[str, Any] = {
            "consumer_id": consumer_id,
            "lease_expires_at": now + lease,
            "now": now,
            "limit": limit,
        }
        if queues is None:
            rows = conn.execute(Q["claim_any_queue"], params).fetchall()
        elif len(queues) == 1:
            rows = conn.execute(Q["claim_one_queue"], {**params, "queue": queues[0]}).fetchall()
        else:
            rows = conn.execute(Q["claim_many_queues"], {**params, "queues": queues}).fetchall()
        # RETURNING gives rows in no promised order; hand them out in claim order.
        return sorted((Job.from_row(r) for r in rows), key=lambda j: (-j.priority, j.run_at, j.id))

    def _apply_outcome(
        self, conn: Connection, outcome: Outcome, actor: str | None, now: float
    ) -> Job:
        if outcome.kind == "done":  # needs nothing from the job: skip reading it
            params = {
                "id": outcome.job_id,
                "token": outcome.lease_token,
                "now": now,
                "actor": actor,
            }
            done = conn.execute(Q["job_complete"], params).fetchone()
            if done is not None:
                return Job.from_row(done)
        row = conn.execute(Q["job_get"], {"id": outcome.job_id}).fetchone()
        if row is None:
            raise JobNotFound(outcome.job_id)
        if row["status"] != JobState.PROCESSING.value or row["lease_token"] != outcome.lease_token:
            raise LeaseLost(outcome.job_id)
        job = Job.from_row(row)
        actor = actor or job.consumer_id or "consumer"
        return self._apply(conn, job, outcome_move(job, outcome, self.settings, now), actor, now)

    def heartbeat(
        self, job_id: int, lease_token: str, *, lease_seconds: float | None = None
    ) -> float:
        lease = self._lease_seconds(lease_seconds)

        def body(conn: Connection) -> float:
            now = self.clock()
            params = {
                "id": job_id,
                "token": lease_token,
                "now": now,
                "lease_expires_at": now + lease,
            }
            row = conn.execute(Q["job_heartbeat"], params).fetchone()
            if row is None:
                if conn.execute(Q["job_get"], {"id": job_id}).fetchone() is None:
                    raise JobNotFound(job_id)
                raise LeaseLost(job_id)
            return float(row["lease_expires_at"])

        return self.db.write(body, single_statement=True)

    def wait_for_jobs(self, timeout: float, queues: Sequence[str] | None = None) -> bool:
        """Sleeps on LISTEN until a NOTIFY from an enqueue (or a move back to pending)
        arrives, re-checking at least every ``WAIT_POLL_SECONDS`` and when a delayed job
        comes due."""
        names = self._check_queues(queues)
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            self.listener.arm()  # listening before the check: no wake-up is missed
            now = self.clock()

            def probe(conn: Connection, now: float = now) -> float | None:
                return next_run_at(conn, names, now)

            due = self.db.read(probe)
            if due is not None and due <= now:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            pause = min(remaining, WAIT_POLL_SECONDS)
            if due is not None:
                pause = min(pause, max(due - now, 0.001))
            self.listener.wait(pause)

    # ---------------------------------------------------------------- reading

    def get(self, job_id: int) -> Job:
        job_id = check_id(job_id)
        row = self.db.read(lambda c: c.execute(Q["job_get"], {"id": job_id}).fetchone())
        if row is None:
            raise JobNotFound(job_id)
        return Job.from_row(row)

    def history(self, job_id: int) -> list[JobEvent]:
        job_id = check_id(job_id)

        def body(conn: Connection) -> list[dict[str, Any]]:
            rows = conn.execute(Q["events_for_job"], {"job_id": job_id}).fetchall()
            if not rows and conn.execute(Q["job_get"], {"id": job_id}).fetchone() is None:
                raise JobNotFound(job_id)
            return rows

        return [JobEvent.from_row(r) for r in self.db.read(body)]

    def stats(self, queue: str | None = None) -> Stats:
        if queue is not None:
            self._check_queues([queue])
        now = self.clock()
        by_queue = {"queue": queue, "now": now}

        def body(conn: Connection) -> tuple[list[dict[str, Any]], Any, int, int]:
            scope = "" if queue is None else "_for_queue"
            rows = conn.execute(Q["counts_active" + scope], by_queue).fetchall()
            finals = conn.execute(Q["counts_final" + scope], by_queue).fetchall()
            oldest = conn.execute(Q["oldest_runnable_pending" + scope], by_queue).fetchone()
            stalled = conn.execute(Q["stalled_count" + scope], by_queue).fetchone()
            delta_rows = sum(int(r["rows"]) for r in finals)
            return (
                rows + finals,
                oldest and oldest["run_at"],
                stalled["n"] if stalled else 0,
                delta_rows,
            )

        rows, oldest, stalled, delta_rows = self.db.read(body, snapshot=True)
        if delta_rows >= FOLD_DELTAS_AT:
            self._fold_count_deltas()
        counts = {state.value: 0 for state in JobState}
        for row in rows:
            counts[row["status"]] = int(row["n"])
        return Stats(
            counts=counts,
            oldest_pending_age=max(0.0, now - oldest) if oldest is not None else None,
            stalled=int(stalled),
            dead_letter=counts[JobState.PERMANENTLY_FAILED.value],
            total=sum(counts.values()),
        )

    def _fold_count_deltas(self) -> None:
        try:
            self.db.write(lambda c: c.execute(Q["count_deltas_fold"]), single_statement=True)
        except DatabaseReadOnly:  # a read-only replica: sums stay correct, just longer
            pass

    def list_jobs(
        self,
        flt: JobFilter | None = None,
        *,
        limit: int = 50,
        before_id: int | None = None,
        oldest_first: bool = False,
        after_id: int | None = None,
    ) -> Page:
        self._check_limit(limit, 1000, minimum=1)
        where, params = filter_sql(flt or JobFilter())
        if before_id is not None:
            where.append("id < %(before_id)s")
            params["before_id"] = check_id(before_id)
        if after_id is not None:
            where.append("id > %(after_id)s")
            params["after_id"] = check_id(after_id)
        statement = (
            "SELECT * FROM jobs"
            + (" WHERE " + " AND ".join(where) if where else "")
            + (" ORDER BY id ASC" if oldest_first else " ORDER BY id DESC")
            + " LIMIT %(limit)s"
        )
        params["limit"] = limit + 1
        rows = self.db.read(lambda c: c.execute(statement.encode(), params).fetchall())
        jobs = [Job.from_row(r) for r in rows[:limit]]
        return Page(jobs, jobs[-1].id if len(rows) > limit else None)

    def count_jobs(self, flt: JobFilter | None = None) -> int:
        flt = flt or JobFilter()
        if flt.text is None and flt.created_after is None and flt.created_before is None:
            stats = self.stats(flt.queue)  # no scan of the final states
            wanted = flt.statuses or tuple(JobState)
            return sum(stats.counts[JobState(s).value] for s in wanted)
        where, params = filter_sql(flt)
        statement = "SELECT count(*) AS n FROM jobs WHERE " + " AND ".join(where)
        row = self.db.read(lambda c: c.execute(statement.encode(), params).fetchone())
        return int(row["n"]) if row else 0

    # ---------------------------------------------------------------- console charts

    def _select(self, query: str, params: dict[str, Any] | None = None) -> list[Any]:
        statement = Q[query]
        return self.db.read(lambda c: c.execute(statement, params or {}).fetchall())

    def dedupe_keys_known(self, keys: Sequence[str]) -> set[str]:
        """The subset of ``keys`` carried by some job in any state (finished ones too)."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return set()
        self._check_limit(len(wanted))
        rows = self.db.read(
            lambda c: c.execute(Q["dedupe_keys_known"], {"keys": wanted}).fetchall()
        )
        return {r["dedupe_key"] for r in rows}

    def last_event_id(self) -> int:
        """The id of the newest history row (0 if none): a cursor for ``events_after``."""
        row = self.db.read(lambda c: c.execute(Q["last_event_id"]).fetchone())
        return int(row["id"]) if row else 0

    def events_after(
        self, after_id: int, *, to_status: JobState | None = None, limit: int = 1000
    ) -> list[JobEvent]:
        """History rows with an id above ``after_id`` (optionally only those entering
        ``to_status``), oldest first."""
        self._check_limit(limit)
        if isinstance(after_id, bool) or not isinstance(after_id, int) or after_id < 0:
            raise InvalidArgument("after_id must be a non-negative integer")
        params: dict[str, Any] = {"after_id": after_id, "limit": limit}
        name = "events_after"
        if to_status is not None:
            name, params["to_status"] = "events_after_to_status", JobState(to_status).value
        rows = self.db.read(lambda c: c.execute(Q[name], params).fetchall())
        return [JobEvent.from_row(r) for r in rows]

    # ---------------------------------------------------------------- operators

    def operator_action(
        self, transition: Transition, job_id: int, *, actor: str, reason: str | None = None
    ) -> Job:
        job_id = check_id(job_id)
        check_operator(transition, actor)

        def body(conn: Connection) -> Job:
            row = conn.execute(Q["job_get"], {"id": job_id}).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            job, now = Job.from_row(row), self.clock()
            refuse_taken_dedupe_key(conn, job, transition)
            return self._apply(
                conn, job, operator_move(job, transition, actor, reason, now), actor, now
            )

        return self.db.write(body)

    def bulk_action(
        self,
        transition: Transition,
        flt: JobFilter,
        *,
        actor: str,
        reason: str | None = None,
        limit: int | None = None,
    ) -> tuple[int, int]:
        check_operator(transition, actor)
        sources = [s for s in (flt.statuses or tuple(JobState)) if can(transition, s)]
        if not sources:
            return 0, 0
        where, params = filter_sql(JobFilter(tuple(sources), flt.queue, flt.text,
                                              flt.created_after, flt.created_before))  # fmt: skip
        statement = (
            "SELECT * FROM jobs WHERE " + " AND ".join(where) + " AND id < %(before_id)s"
            " ORDER BY id DESC LIMIT %(chunk)s"
        ).encode()
        applied = skipped = 0
        before = 2**62
        while limit is None or applied + skipped < limit:
            chunk = BULK_CHUNK if limit is None else min(BULK_CHUNK, limit - applied - skipped)
            page = {**params, "before_id": before, "chunk": chunk}

            def body(conn: Connection, page: dict[str, Any] = page) -> tuple[int, int, int | None]:
                done = missed = 0
                last = None
                now = self.clock()
                for row in conn.execute(statement, page).fetchall():
                    last = row["id"]
                    job = Job.from_row(row)
                    try:  # a job that changed meanwhile is skipped; nothing was written
                        refuse_taken_dedupe_key(conn, job, transition)
                        move = operator_move(job, transition, actor, reason, now)
                        self._apply(conn, job, move, actor, now)
                        done += 1
                    except InvalidTransition:
                        missed += 1
                return done, missed, last

            done, missed, last = self.db.write(body)
            applied, skipped = applied + done, skipped + missed
            if last is None:
                break
            before = last
        return applied, skipped

    # ---------------------------------------------------------------- manager

    def rescue_expired(self, *, limit: int = 1000) -> list[Job]:
        return self._rescue("expired_leases", {"limit": limit}, "lease expired")

    def rescue_stalled(self, stall_timeout: float, *, limit: int = 1000) -> list[Job]:
        if not stall_timeout > 0:
            raise InvalidArgument("stall_timeout must be positive")
        params = {"limit": limit, "stall_timeout": stall_timeout}
        return self._rescue(
            "stalled_processing", params, f"processing longer than {stall_timeout:g}s"
        )

    def _rescue(self, select: str, params: dict[str, Any], why: str) -> list[Job]:
        self._check_limit(params["limit"])

        def body(conn: Connection) -> list[Job]:
            now = self.clock()
            query = {"limit": params["limit"], "now": now}
            if "stall_timeout" in params:
                query = {"limit": params["limit"], "started_before": now - params["stall_timeout"]}
            moved = []
            for row in conn.execute(Q[select], query).fetchall():
                job = Job.from_row(row)
                moved.append(self._apply(conn, job, rescue_move(job, why, now), "manager", now))
            return moved

        return self.db.write(body)

    def schedule_retries(self, *, limit: int = 1000) -> list[Job]:
        self._check_limit(limit)

        def body(conn: Connection) -> list[Job]:
            now = self.clock()
            moved = []
            for row in conn.execute(Q["failed_out_of_attempts"], {"limit": limit}).fetchall():
                job = Job.from_row(row)
                moved.append(self._apply(conn, job, out_of_attempts_move(job), "manager", now))
            for row in conn.execute(Q["due_retries"], {"now": now, "limit": limit}).fetchall():
                job = Job.from_row(row)
                moved.append(self._apply(conn, job, retry_move(job, now), "manager", now))
            return moved

        return self.db.write(body)

    def purge_done(self, older_than: float, *, limit: int = 10_000) -> int:
        if not older_than >= 0:
            raise InvalidArgument("older_than must not be negative")
        self._check_limit(limit, 1_000_000)
        params = {"finished_before": self.clock() - older_than, "limit": limit}
        return self.db.write(
            lambda c: c.execute(Q["done_purge"], params).rowcount, single_statement=True
        )

    # ---------------------------------------------------------------- the one transition

    def _apply(self, conn: Connection, job: Job, move: Move, actor: str, now: float) -> Job:
        """Apply ``move`` to ``job`` with one guarded statement that also writes its history.

        The UPDATE matches only while the job is still in the state it was read in (and,
        for a lease holder, still carries the token): if another actor moved it first,
        nothing changes and a ``Conflict`` is raised.
        """
        transition = move.transition
        if not can(transition, job.status):
            raise InvalidTransition(job.id, transition.value, job.status.value)
        to = target(transition)
        params = {
            "id": job.id,
            "expected": job.status.value,
            "token": move.token,
            "now": now,
            "action": transition.value,
            "actor": actor,
            "detail": move.detail,
            **move.fields,
        }
        if to is JobState.PENDING:
            statement = Q["job_to_pending"]
        elif to is JobState.FAILED:
            statement = Q["job_to_failed"]
        else:
            statement = Q["job_to_final"]
            params["to_status"] = to.value
        row = conn.execute(statement, params).fetchone()
        if row is None:
            if move.token is not None:
                raise LeaseLost(job.id)
            why = f"job {job.id} changed while {transition.value} ran"
            raise InvalidTransition(job.id, transition.value, job.status.value, why)
        if to is JobState.PENDING:
            conn.execute(Q["notify_jobs"], {"queues": [job.queue]})
        return Job.from_row(row)

    # ---------------------------------------------------------------- registry, leadership

    def _change(self, query: str, params: dict[str, Any]) -> tuple[list[Any], int]:
        statement = Q[query]

        def body(conn: Connection) -> tuple[list[Any], int]:
            cursor = conn.execute(statement, params)
            rows = cursor.fetchall() if cursor.description else []
            return rows, cursor.rowcount

        return self.db.write(body, single_statement=True)

    # ---------------------------------------------------------------- audit

    def doctor(self) -> list[str]:
        return self.db.read(audit, snapshot=True)


assert {JobState.DONE, JobState.PERMANENTLY_FAILED, JobState.CANCELLED} == FINAL_STATES, (
    "job_count_deltas (migrations/postgresql) counts exactly the final states"
)
