"""The SQLite backend: one WAL-mode file shared by every process on one host."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pqcore import sql
from pqcore.base import PersistentQInterface, check_consumer_id
from pqcore.config import QueueSettings
from pqcore.db import SQLiteDatabase
from pqcore.doorbell import Doorbell
from pqcore.exceptions import InvalidArgument, InvalidTransition, JobNotFound, LeaseLost
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
from pqcore.policy import (
    Move,
    operator_move,
    out_of_attempts_move,
    outcome_move,
    rescue_move,
    retry_move,
)
from pqcore.policy import check_id as _check_id
from pqcore.policy import check_operator as _check_operator
from pqcore.policy import event_row as _event
from pqcore.states import ALLOWED_EDGES, JobState, Transition, can, target

Q = sql.load("sqlite")
WAIT_POLL_SECONDS = 0.05  # without the doorbell
DOORBELL_RECHECK_SECONDS = 1.0  # with it: a missed ring delays work at most this long
BULK_CHUNK = 500
SEED_CHUNK = 100_000


class SQLiteQueue(PersistentQInterface):
    backend = "sqlite"

    def __init__(
        self,
        path: str,
        settings: QueueSettings | None = None,
        *,
        create: bool = True,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(settings or QueueSettings(db=path), clock)
        self.db = SQLiteDatabase(path, self.settings, create=create)
        self.path = self.db.path
        wakeup = self.settings.sqlite_wakeup == "doorbell" and self.path != ":memory:"
        self.doorbell = Doorbell(self.path) if wakeup else None

    def __repr__(self) -> str:
        return f"SQLiteQueue({self.path!r})"

    def close(self) -> None:
        if self.doorbell is not None:
            self.doorbell.close()
        self.db.close()

    # ---------------------------------------------------------------- producers

    def enqueue_many(
        self, items: Iterable[str | EnqueueRequest], *, actor: str = "producer"
    ) -> list[Job]:
        now = self.clock()
        rows = [self._validated(item, now) for item in items]  # all checked before any write
        if not rows:
            return []

        if all(values["dedupe_key"] is None for values in rows):
            jobs = self.db.write(lambda conn: self._insert_plain(conn, rows, actor))
            self._ring()
            return jobs

        def body(conn: sqlite3.Connection) -> list[Job]:
            jobs: list[Job] = []
            events: list[dict[str, Any]] = []
            for values in rows:
                if values["dedupe_key"] is not None:
                    existing = conn.execute(Q["job_by_active_dedupe_key"], values).fetchone()
                    if existing is not None:
                        jobs.append(Job.from_row(existing))
                        continue
                inserted: sqlite3.Row = conn.execute(Q["job_insert"], values).fetchone()
                job = Job.from_row(inserted)
                jobs.append(job)
                events.append(_event(job.id, now, None, job.status, Transition.ENQUEUE, actor, 0))
            conn.executemany(Q["event_insert"], events)
            return jobs

        jobs = self.db.write(body)
        self._ring()
        return jobs

    @staticmethod
    def _insert_plain(
        conn: sqlite3.Connection, rows: list[dict[str, Any]], actor: str
    ) -> list[Job]:
        # No dedupe keys: one executemany for the jobs and one INSERT ... SELECT for
        # their history, then read them back (ids ascend in insertion order).
        after = conn.execute(Q["jobs_last_id"]).fetchone()[0]
        conn.executemany(Q["job_insert_plain"], rows)
        conn.execute(Q["events_enqueued_after"], {"after": after, "actor": actor})
        jobs = _jobs(conn.execute(Q["jobs_after"], {"after": after}))
        if len(jobs) != len(rows):
            raise RuntimeError(f"inserted {len(rows)} jobs but read back {len(jobs)}")
        return jobs

    def seed_finished_jobs(
        self, count: int, *, queue: str = "default", data: str = "seed", actor: str = "seed"
    ) -> int:
        """Write ``count`` jobs that are already done, each with the history a real run
        leaves (enqueue, claim, complete by ``actor``), set-wise in chunks of 100,000:
        a million in seconds. For benchmarks and tests that need a big table (the cost
        of claim and stats must not grow with it); not part of the queue interface.
        Returns how many were written."""
        self._check_limit(count, 100_000_000)
        self._validated(EnqueueRequest(data, queue), 0.0)
        written = 0
        while written < count:
            chunk = min(SEED_CHUNK, count - written)
            params = {
                "count": chunk, "queue": queue, "data": data, "actor": actor,
                "now": self.clock(), "max_attempts": self.settings.max_attempts,
            }  # fmt: skip

            def body(conn: sqlite3.Connection, params: dict[str, Any] = params) -> None:
                after = conn.execute(Q["jobs_last_id"]).fetchone()[0]
                conn.execute(Q["seed_done_jobs"], params)
                conn.execute(Q["seed_done_events"], {**params, "after": after})

            self.db.write(body)
            written += chunk
        return written

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

        def body(conn: sqlite3.Connection) -> SettleResult:
            now = self.clock()
            # Completions go through one guarded UPDATE together; results are still
            # reported in the order the outcomes came in.
            applied: dict[int, Job] = {}
            refused: list[int] = []
            completions = [(i, o) for i, o in enumerate(outcomes) if o.kind == "done"]
            for i, outcome in enumerate(outcomes):
                if outcome.kind == "done":
                    continue
                try:
                    applied[i] = self._apply_outcome(conn, outcome, consumer_id, now)
                except (LeaseLost, JobNotFound):
                    refused.append(i)
            if completions:
                held = [o for _, o in completions]
                completed = {j.id: j for j in self._complete_held(conn, held, consumer_id, now)}
                for i, outcome in completions:
                    job = completed.pop(outcome.job_id, None)  # a repeated outcome is refused
                    if job is None:
                        refused.append(i)
                    else:
                        applied[i] = job
            settled = [applied[i] for i in sorted(applied)]
            lost = [outcomes[i].job_id for i in sorted(refused)]
            claimed = self._claim(conn, consumer_id, limit, names, lease, now) if limit else []
            return SettleResult(settled, lost, claimed)

        # A claim that settles nothing need not wait for fsync: if a power cut undoes
        # it, the job is pending again, just as the rescue of a crashed consumer's job
        # would make it, and that consumer died with the power. Every outcome (and
        # every enqueue) is durable before the call returns.
        result = self.db.write(body, durable=bool(outcomes))
        if any(o.kind == "release" for o in outcomes):
            self._ring()
        return result

    def _complete_held(
        self, conn: sqlite3.Connection, outcomes: list[Outcome], actor: str | None, now: float
    ) -> list[Job]:
        """processing -> done for every outcome whose lease is still held, in one guarded
        UPDATE; the others are simply not returned."""
        params = {
            "now": now,
            "ids": json.dumps([o.job_id for o in outcomes]),
            "held": json.dumps([f"{o.job_id}:{o.lease_token}" for o in outcomes]),
        }
        done = _jobs(conn.execute(Q["jobs_complete_held"], params))
        conn.executemany(
            Q["event_insert"],
            [
                _event(j.id, now, JobState.PROCESSING, j.status, Transition.COMPLETE,
                       actor or j.consumer_id or "consumer", j.attempts)
                for j in done
            ],
        )  # fmt: skip
        return done

    def _settle_one(self, outcome: Outcome) -> Job:
        job = self.db.write(lambda conn: self._apply_outcome(conn, outcome, None, self.clock()))
        return self._ring_if_pending([job])[0]

    def _claim(
        self,
        conn: sqlite3.Connection,
        consumer_id: str,
        limit: int,
        queues: list[str] | None,
        lease: float,
        now: float,
    ) -> list[Job]:
        if queues is None:
            queues = [row[0] for row in conn.execute(Q["queues_with_pending"])]
            if not queues:
                return []
        params = {
            "consumer_id": consumer_id,
            "lease_expires_at": now + lease,
            "now": now,
            "limit": limit,
        }
        if len(queues) == 1:
            cursor = conn.execute(Q["claim_one_queue"], {**params, "queue": queues[0]})
        else:
            cursor = conn.execute(Q["claim_many_queues"], {**params, "queues": json.dumps(queues)})
        # RETURNING gives rows in no promised order; hand them out in claim order.
        jobs = sorted(_jobs(cursor), key=lambda j: (-j.priority, j.run_at, j.id))
        conn.executemany(
            Q["event_insert"],
            [
                _event(
                    j.id, now, JobState.PENDING, j.status, Transition.CLAIM, consumer_id, j.attempts
                )
                for j in jobs
            ],
        )
        return jobs

    def _apply_outcome(
        self, conn: sqlite3.Connection, outcome: Outcome, actor: str | None, now: float
    ) -> Job:
        if outcome.kind == "done":
            # The guarded UPDATE alone decides; only a refusal reads the job, to tell
            # JobNotFound from LeaseLost.
            for job in self._complete_held(conn, [outcome], actor, now):
                return job
            self._held(conn, outcome.job_id, outcome.lease_token)
            raise LeaseLost(outcome.job_id)
        row = self._held(conn, outcome.job_id, outcome.lease_token)
        job = Job.from_row(row)
        actor = actor or job.consumer_id or "consumer"
        return self._apply(conn, job, outcome_move(job, outcome, self.settings, now), actor, now)

    def _held(self, conn: sqlite3.Connection, job_id: int, token: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute(Q["job_get"], {"id": job_id}).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        if row["status"] != JobState.PROCESSING.value or row["lease_token"] != token:
            raise LeaseLost(job_id)
        return row

    def heartbeat(
        self, job_id: int, lease_token: str, *, lease_seconds: float | None = None
    ) -> float:
        lease = self._lease_seconds(lease_seconds)

        def body(conn: sqlite3.Connection) -> float:
            now = self.clock()
            params = {
                "id": job_id,
                "token": lease_token,
                "now": now,
                "lease_expires_at": now + lease,
            }
            row = conn.execute(Q["job_heartbeat"], params).fetchone()
            if row is None:
                self._held(conn, job_id, lease_token)  # raises the precise error
                raise LeaseLost(job_id)
            return float(row[0])

        return self.db.write(body)

    def wait_for_jobs(self, timeout: float, queues: Sequence[str] | None = None) -> bool:
        names = self._check_queues(queues)
        param = json.dumps(names) if names else None
        deadline = time.monotonic() + max(0.0, timeout)
        # Bound before the first check, so a ring after it is not missed.
        bell = self.doorbell is not None and self.doorbell.listen()
        while True:
            params = {"now": self.clock(), "queues": param}

            def probe(c: sqlite3.Connection, p: dict[str, Any] = params) -> Any:
                if c.execute(Q["runnable_exists"], p).fetchone() is not None:
                    return True
                return c.execute(Q["next_run_at"], p).fetchone()[0]

            found = self.db.query(probe)
            if found is True:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if not bell or self.doorbell is None:
                time.sleep(min(WAIT_POLL_SECONDS, remaining))
                continue
            # A delayed job becomes due without anyone ringing: wake for it too.
            until_due = max(0.001, found - params["now"]) if found is not None else remaining
            self.doorbell.wait(min(remaining, until_due, DOORBELL_RECHECK_SECONDS))

    def _ring(self) -> None:
        if self.doorbell is not None:
            self.doorbell.ring()

    def _ring_if_pending(self, jobs: list[Job]) -> list[Job]:
        if any(j.status is JobState.PENDING for j in jobs):
            self._ring()
        return jobs

    # ---------------------------------------------------------------- reading

    def get(self, job_id: int) -> Job:
        job_id = _check_id(job_id)
        row = self.db.query(lambda c: c.execute(Q["job_get"], {"id": job_id}).fetchone())
        if row is None:
            raise JobNotFound(job_id)
        return Job.from_row(row)

    def history(self, job_id: int) -> list[JobEvent]:
        job_id = _check_id(job_id)
        with self.db.read() as conn:
            rows = conn.execute(Q["events_for_job"], {"job_id": job_id}).fetchall()
            if not rows and conn.execute(Q["job_get"], {"id": job_id}).fetchone() is None:
                raise JobNotFound(job_id)
        return [JobEvent.from_row(r) for r in rows]

    def stats(self, queue: str | None = None) -> Stats:
        if queue is not None:
            self._check_queues([queue])
        now = self.clock()
        with self.db.read() as conn:
            if queue is None:
                rows = conn.execute(Q["counts_by_status"]).fetchall()
            else:
                rows = conn.execute(Q["counts_by_status_for_queue"], {"queue": queue}).fetchall()
            scope = {"now": now, "queue": queue}
            oldest = conn.execute(Q["oldest_runnable_pending"], scope).fetchone()[0]
            stalled = conn.execute(Q["stalled_count"], scope).fetchone()[0]
        counts = {state.value: 0 for state in JobState}
        for status, n in rows:
            counts[status] = int(n)
        return Stats(
            counts=counts,
            oldest_pending_age=max(0.0, now - oldest) if oldest is not None else None,
            stalled=int(stalled),
            dead_letter=counts[JobState.PERMANENTLY_FAILED.value],
            total=sum(counts.values()),
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
        self._check_limit(limit, 1000, minimum=1)
        where, params = _filter_sql(flt or JobFilter())
        if before_id is not None:
            where.append("id < :before_id")
            params["before_id"] = _check_id(before_id)
        if after_id is not None:
            where.append("id > :after_id")
            params["after_id"] = _check_id(after_id)
        statement = (
            "SELECT * FROM jobs WHERE "
            + " AND ".join(where)
            + (" ORDER BY id ASC" if oldest_first else " ORDER BY id DESC")
            + " LIMIT :limit"
        )
        params["limit"] = limit + 1
        rows = self.db.query(lambda c: c.execute(statement, params).fetchall())
        jobs = [Job.from_row(r) for r in rows[:limit]]
        return Page(jobs, jobs[-1].id if len(rows) > limit else None)

    def count_jobs(self, flt: JobFilter | None = None) -> int:
        flt = flt or JobFilter()
        if flt.text is None and flt.created_after is None and flt.created_before is None:
            stats = self.stats(flt.queue)  # kept by triggers: no table scan
            wanted = flt.statuses or tuple(JobState)
            return sum(stats.counts[s.value] for s in wanted)
        where, params = _filter_sql(flt)
        statement = "SELECT count(*) FROM jobs WHERE " + " AND ".join(where)
        return int(self.db.query(lambda c: c.execute(statement, params).fetchone()[0]))

    # ---------------------------------------------------------------- console charts

    def _select(self, query: str, params: dict[str, Any] | None = None) -> list[Any]:
        statement = Q[query]
        return self.db.query(lambda c: c.execute(statement, params or {}).fetchall())

    def dedupe_keys_known(self, keys: Sequence[str]) -> set[str]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return set()
        self._check_limit(len(wanted))
        params = {"keys": json.dumps(wanted)}
        rows = self.db.query(lambda c: c.execute(Q["dedupe_keys_known"], params).fetchall())
        return {r[0] for r in rows}

    def last_event_id(self) -> int:
        return int(self.db.query(lambda c: c.execute(Q["last_event_id"]).fetchone()[0]))

    def events_after(
        self, after_id: int, *, to_status: JobState | None = None, limit: int = 1000
    ) -> list[JobEvent]:
        self._check_limit(limit)
        if isinstance(after_id, bool) or not isinstance(after_id, int) or after_id < 0:
            raise InvalidArgument("after_id must be a non-negative integer")
        params = {
            "after_id": after_id,
            "to_status": JobState(to_status).value if to_status is not None else None,
            "limit": limit,
        }
        rows = self.db.query(lambda c: c.execute(Q["events_after"], params).fetchall())
        return [JobEvent.from_row(r) for r in rows]

    # ---------------------------------------------------------------- operators

    def operator_action(
        self, transition: Transition, job_id: int, *, actor: str, reason: str | None = None
    ) -> Job:
        job_id = _check_id(job_id)
        _check_operator(transition, actor)

        def body(conn: sqlite3.Connection) -> Job:
            row = conn.execute(Q["job_get"], {"id": job_id}).fetchone()
            if row is None:
                raise JobNotFound(job_id)
            return self._operate(conn, Job.from_row(row), transition, actor, reason, self.clock())

        return self._ring_if_pending([self.db.write(body)])[0]

    def _operate(
        self,
        conn: sqlite3.Connection,
        job: Job,
        transition: Transition,
        actor: str,
        reason: str | None,
        now: float,
    ) -> Job:
        if transition is Transition.RESUBMIT and job.dedupe_key is not None:
            holder = conn.execute(Q["job_by_active_dedupe_key"], vars(job)).fetchone()
            if holder is not None and holder["id"] != job.id:
                raise InvalidTransition(
                    job.id, transition.value, job.status.value,
                    f"cannot resubmit job {job.id}: active job {holder['id']} holds its"
                    f" dedupe key {job.dedupe_key!r}",
                )  # fmt: skip
        return self._apply(
            conn, job, operator_move(job, transition, actor, reason, now), actor, now
        )

    def bulk_action(
        self,
        transition: Transition,
        flt: JobFilter,
        *,
        actor: str,
        reason: str | None = None,
        limit: int | None = None,
    ) -> tuple[int, int]:
        _check_operator(transition, actor)
        sources = [s for s in (flt.statuses or tuple(JobState)) if can(transition, s)]
        if not sources:
            return 0, 0
        where, params = _filter_sql(JobFilter(tuple(sources), flt.queue, flt.text,
                                              flt.created_after, flt.created_before))  # fmt: skip
        statement = (
            "SELECT * FROM jobs WHERE " + " AND ".join(where) + " AND id < :before_id"
            " ORDER BY id DESC LIMIT :chunk"
        )
        applied = skipped = 0
        before = 2**62
        while limit is None or applied + skipped < limit:
            chunk = BULK_CHUNK if limit is None else min(BULK_CHUNK, limit - applied - skipped)

            page = {**params, "before_id": before, "chunk": chunk}

            def body(
                conn: sqlite3.Connection, page: dict[str, Any] = page
            ) -> tuple[int, int, int | None]:
                rows = conn.execute(statement, page)
                done = missed = 0
                last = None
                now = self.clock()
                for row in rows.fetchall():
                    last = row["id"]
                    try:
                        self._operate(conn, Job.from_row(row), transition, actor, reason, now)
                        done += 1
                    except InvalidTransition:
                        missed += 1
                return done, missed, last

            done, missed, last = self.db.write(body)
            applied, skipped = applied + done, skipped + missed
            if last is None:
                break
            before = last
        if applied and target(transition) is JobState.PENDING:
            self._ring()
        return applied, skipped

    # ---------------------------------------------------------------- manager

    def rescue_expired(self, *, limit: int = 1000) -> list[Job]:
        return self._rescue(Q["expired_leases"], {"limit": limit}, "lease expired")

    def rescue_stalled(self, stall_timeout: float, *, limit: int = 1000) -> list[Job]:
        if not stall_timeout > 0:
            raise InvalidArgument("stall_timeout must be positive")
        params = {"limit": limit, "stall_timeout": stall_timeout}
        return self._rescue(
            Q["stalled_processing"], params, f"processing longer than {stall_timeout:g}s"
        )

    def _rescue(self, select: str, params: dict[str, Any], why: str) -> list[Job]:
        self._check_limit(params["limit"])

        def body(conn: sqlite3.Connection) -> list[Job]:
            now = self.clock()
            query = {**params, "now": now, "started_before": now - params.get("stall_timeout", 0)}
            moved = []
            for row in conn.execute(select, query).fetchall():
                job = Job.from_row(row)
                moved.append(self._apply(conn, job, rescue_move(job, why, now), "manager", now))
            return moved

        return self._ring_if_pending(self.db.write(body))

    def schedule_retries(self, *, limit: int = 1000) -> list[Job]:
        self._check_limit(limit)

        def body(conn: sqlite3.Connection) -> list[Job]:
            now = self.clock()
            moved = []
            for row in conn.execute(Q["failed_out_of_attempts"], {"limit": limit}).fetchall():
                job = Job.from_row(row)
                moved.append(self._apply(conn, job, out_of_attempts_move(job), "manager", now))
            for row in conn.execute(Q["due_retries"], {"now": now, "limit": limit}).fetchall():
                job = Job.from_row(row)
                moved.append(self._apply(conn, job, retry_move(job, now), "manager", now))
            return moved

        return self._ring_if_pending(self.db.write(body))

    def purge_done(self, older_than: float, *, limit: int = 10_000) -> int:
        if not older_than >= 0:
            raise InvalidArgument("older_than must not be negative")
        self._check_limit(limit, 1_000_000)
        params = {"finished_before": self.clock() - older_than, "limit": limit}
        return self.db.write(lambda c: c.execute(Q["done_purge"], params).rowcount)

    # ---------------------------------------------------------------- the one transition

    def _apply(self, conn: sqlite3.Connection, job: Job, move: Move, actor: str, now: float) -> Job:
        return self._move(
            conn, job, move.transition, actor, now, token=move.token, detail=move.detail,
            **move.fields,
        )  # fmt: skip

    def _move(
        self,
        conn: sqlite3.Connection,
        job: Job,
        transition: Transition,
        actor: str,
        now: float,
        *,
        token: str | None = None,
        detail: str | None = None,
        **fields: Any,
    ) -> Job:
        """Apply ``transition`` to ``job`` with one guarded UPDATE, and record it.

        The UPDATE matches only while the job is still in the state it was read in
        (and, for a lease holder, still carries the token): if another actor moved it
        first, nothing changes and a ``Conflict`` is raised.
        """
        if not can(transition, job.status):
            raise InvalidTransition(job.id, transition.value, job.status.value)
        to = target(transition)
        params = {"id": job.id, "expected": job.status.value, "token": token, "now": now, **fields}
        if to is JobState.PENDING:
            statement = Q["job_to_pending"]
        elif to is JobState.FAILED:
            statement = Q["job_to_failed"]
        else:
            statement = Q["job_to_final"]
            params["to_status"] = to.value
        row = conn.execute(statement, params).fetchone()
        if row is None:
            if token is not None:
                raise LeaseLost(job.id)
            why = f"job {job.id} changed while {transition.value} ran"
            raise InvalidTransition(job.id, transition.value, job.status.value, why)
        moved = Job.from_row(row)
        conn.execute(
            Q["event_insert"],
            _event(
                job.id, now, job.status, moved.status, transition, actor, moved.attempts, detail
            ),
        )
        return moved

    # ---------------------------------------------------------------- registry, leadership

    def _change(self, query: str, params: dict[str, Any]) -> tuple[list[Any], int]:
        statement = Q[query]

        def body(conn: sqlite3.Connection) -> tuple[list[Any], int]:
            cursor = conn.execute(statement, params)
            rows = cursor.fetchall()
            return rows, cursor.rowcount

        return self.db.write(body)

    # ---------------------------------------------------------------- audit

    def doctor(self) -> list[str]:
        problems: list[str] = []
        with self.db.read() as conn:
            integrity = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            if integrity != ["ok"]:
                problems += [f"integrity_check: {line}" for line in integrity[:20]]
            for row in conn.execute("PRAGMA foreign_key_check").fetchall()[:20]:
                problems.append(f"foreign key broken in {row[0]} row {row[1]}")
            for job_id, n in conn.execute(Q["audit_completed_twice"]):
                problems.append(f"job {job_id} was completed {n} times")
            for (job_id,) in conn.execute(Q["audit_done_without_event"]):
                problems.append(f"job {job_id} is done but its history has no completion")
            for job_id, status, last in conn.execute(Q["audit_status_differs_from_history"]):
                problems.append(f"job {job_id} is {status} but its history ends in {last}")
            for (job_id,) in conn.execute(Q["audit_job_without_history"]):
                problems.append(f"job {job_id} has no history")
            for job_id, status in conn.execute(Q["audit_lease_mismatch"]):
                problems.append(f"job {job_id} is {status} with an inconsistent lease")
            for queue, status, actual, counted in conn.execute(Q["audit_counts"]):
                problems.append(
                    f"count of {status} jobs in queue {queue} is {counted}, actually {actual}"
                )
            for source, dest in conn.execute(Q["audit_edges"]):
                edge = (JobState(source) if source else None, JobState(dest))
                if edge not in ALLOWED_EDGES:
                    problems.append(f"history holds a transition {source} -> {dest} not allowed")
            for key, n in conn.execute(Q["audit_active_dedupe_duplicates"]):
                problems.append(f"dedupe key {key!r} is held by {n} active jobs")
        return problems


# -------------------------------------------------------------------- helpers


_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job))
_STATUS_AT = _JOB_FIELDS.index("status")
_STATES = {state.value: state for state in JobState}


def _jobs(cursor: sqlite3.Cursor) -> list[Job]:
    """Jobs from a cursor over whole ``jobs`` rows: columns located once per cursor
    rather than looked up by name for every row (the claim and settle hot path)."""
    rows = cursor.fetchall()
    if not rows:
        return []
    names = [column[0] for column in cursor.description]
    order = [names.index(field) for field in _JOB_FIELDS]
    jobs = []
    for row in rows:
        values = [row[i] for i in order]
        values[_STATUS_AT] = _STATES[values[_STATUS_AT]]
        jobs.append(Job(*values))
    return jobs


def _filter_sql(flt: JobFilter) -> tuple[list[str], dict[str, Any]]:
    """WHERE fragments (fixed text) and their parameters for a job filter."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if len(flt.statuses) == 1:
        where.append("status = :status")  # lets the planner walk (status, id) in order
        params["status"] = JobState(flt.statuses[0]).value
    elif flt.statuses:
        names = [JobState(s).value for s in flt.statuses]
        where.append("status IN (SELECT value FROM json_each(:statuses))")
        params["statuses"] = json.dumps(names)
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
    if not where:
        where.append("1 = 1")
    return where, params
