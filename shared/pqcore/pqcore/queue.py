"""The queue: one implementation of the design's ``PersistentQInterface`` over any driver.

Semantics every driver keeps, checked by ``tests/conformance``:

* At-least-once delivery with leases. ``claim`` moves pending jobs to processing
  atomically, gives each a fresh random lease token and an expiry, and counts the
  attempt. Two claimers never get the same job.
* Fencing. ``heartbeat``, ``complete``, ``fail`` and ``release`` must present the
  token; once the lease was taken away (rescued, marked by an operator, re-claimed)
  they raise ``LeaseLost`` and change nothing, so a zombie cannot finish a job twice.
* Every transition is a single statement guarded by the expected current state; the
  database appends its ``job_events`` row in the same statement.
* Validation happens before anything is written: bad input raises
  ``InvalidArgument`` and changes nothing.

Times are UNIX epoch seconds from the queue's clock: the driver's (the PostgreSQL
server's own time), or one a test injects.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

from pqcore.admin import Administration
from pqcore.config import QueueSettings
from pqcore.core import notify_dependents
from pqcore.dependencies import Dependencies, count_unfinished
from pqcore.driver import Session
from pqcore.exceptions import DatabaseBusy, JobNotFound, LeaseLost
from pqcore.models import EnqueueRequest, Job, Outcome, QueueControl, SettleResult
from pqcore.policy import outcome_move
from pqcore.reading import Reading
from pqcore.runtime import RuntimeSettings
from pqcore.schedules import Schedules
from pqcore.states import DependencyFailure, OutcomeKind
from pqcore.validation import (
    check_after,
    check_consumer_id,
    check_dependency_failure,
    check_limit,
    check_progress,
    check_queues,
    encode_json,
    enqueue_values,
    lease_seconds,
)


class Queue(Reading, Administration, RuntimeSettings, Schedules, Dependencies):
    """A persistent job queue (``pqcore.open_queue`` opens one)."""

    # ---------------------------------------------------------------- producers

    def enqueue(
        self,
        data: str,
        *,
        queue: str = "default",
        priority: int = 0,
        delay: float = 0.0,
        run_at: float | None = None,
        dedupe_key: str | None = None,
        max_attempts: int | None = None,
        concurrency_key: str | None = None,
        after: Iterable[Any] = (),
        on_dependency_failure: str = DependencyFailure.CANCEL,
        actor: str = "producer",
        connection: object = None,
    ) -> Job:
        """Add one job; with a ``dedupe_key`` that an active job holds, return that job.
        ``concurrency_key`` names the partition a queue's per-key limits count. ``after``
        names jobs (ids or Jobs) it waits for; ``on_dependency_failure`` (``cancel`` or
        ``run``) what it does if one of them ends permanently_failed or cancelled.
        ``connection``: enqueue inside your own open transaction on that connection (a
        ``sqlite3.Connection`` to this file, a psycopg connection to this database): the
        job exists if and only if your transaction commits."""
        request = EnqueueRequest(
            data, queue, priority, delay, run_at, dedupe_key, max_attempts, concurrency_key,
            tuple(after) if after else (), on_dependency_failure,
        )  # fmt: skip
        return self.enqueue_many([request], actor=actor, connection=connection)[0]

    def enqueue_many(
        self,
        items: Iterable[str | EnqueueRequest],
        *,
        actor: str = "producer",
        connection: object = None,
    ) -> list[Job]:
        """Add jobs in one transaction: all of them or none. Returns them in order.
        ``connection``: in your own open transaction instead (see ``enqueue``)."""
        settings = self._refresh_runtime()
        rows = [_checked(item, settings) for item in items]  # all checked first
        if not rows:
            return []

        def body(session: Session) -> list[Job]:
            shared = {"now": self._now(), "actor": actor}
            jobs: list[Job] = []
            plain: list[dict[str, Any]] = []  # consecutive jobs without a dedupe key
            for row in [*rows, None]:
                if row is not None and row[0]["dedupe_key"] is None and not row[1]:
                    plain.append(row[0])
                    continue
                if len(plain) == 1:  # one statement, where the bulk path needs three
                    jobs += session.jobs("job_enqueue_plain_one", {**plain[0], **shared})
                elif plain:  # one bulk insert for the run, keeping ids in input order
                    jobs += session.insert_jobs(plain, shared)
                plain = []
                if row is not None:
                    values, after, policy = row
                    jobs.append(self._insert_one(session, {**values, **shared}, after, policy))
            session.notify({job.queue for job in jobs})
            return jobs

        # One plain job is one statement. It is not idempotent: a connection lost while
        # it ran must be reported (it may have enqueued), never silently run again.
        single = len(rows) == 1 and rows[0][0]["dedupe_key"] is None and not rows[0][1]
        return self._write(
            body, connection=connection, single_statement=single, idempotent=not single
        )

    def _insert_one(
        self,
        session: Session,
        values: dict[str, Any],
        after: tuple[int, ...],
        policy: DependencyFailure,
    ) -> Job:
        """A job with a dedupe key or dependencies (or both). A dedupe key an active job
        holds returns that job as it is: no dependencies are added to it."""
        if not after:
            return self._insert_deduped(session, values)
        locked = self._lock_dependencies(session, after)
        values = {**values, "waiting_for": count_unfinished(locked)}
        if values["dedupe_key"] is None:
            job = session.jobs("job_insert_plain_one", values)[0]
        else:
            job, inserted = self._insert_deduped_or_found(session, values)
            if not inserted:
                return job
        return self._add_dependencies(session, job, locked, policy, values["now"])

    @classmethod
    def _insert_deduped(cls, session: Session, values: dict[str, Any]) -> Job:
        """Insert a job unless an active job holds its dedupe key; then return that one.
        Racing enqueues of one key end in one job either way."""
        return cls._insert_deduped_or_found(session, values)[0]

    @staticmethod
    def _insert_deduped_or_found(session: Session, values: dict[str, Any]) -> tuple[Job, bool]:
        """(the job, whether this call inserted it)."""
        for _ in range(3):  # the holder may finish between our insert and our read
            # Looking first spares an id: a refused INSERT still uses up a sequence value.
            found = session.jobs("job_by_active_dedupe_key", values)
            if found:
                return found[0], False
            inserted = session.jobs("job_insert", values)
            if inserted:
                return inserted[0], True
        raise DatabaseBusy(
            f"dedupe key {values['dedupe_key']!r} kept changing hands; nothing was enqueued,"
            " try again"
        )

    # ---------------------------------------------------------------- consumers

    def claim(
        self,
        consumer_id: str,
        *,
        limit: int = 1,
        queues: Sequence[str] | None = None,
        lease_seconds: float | None = None,
    ) -> list[Job]:
        """Claim up to ``limit`` runnable jobs (highest priority, then oldest first).

        ``queues=None`` claims from every queue.
        """
        return self.settle_and_claim(
            [], consumer_id, limit=limit, queues=queues, lease_seconds=lease_seconds
        ).claimed

    def settle_and_claim(
        self,
        outcomes: Sequence[Outcome],
        consumer_id: str,
        *,
        limit: int = 1,
        queues: Sequence[str] | None = None,
        lease_seconds: float | None = None,
    ) -> SettleResult:
        """Report outcomes of held jobs and claim the next ones in one transaction.

        An outcome whose lease is no longer held is not applied; its job id is
        listed in ``lost`` (the others still apply).
        """
        check_limit(limit)
        names = check_queues(queues)
        self._refresh_runtime()  # outcomes below use the operators' current retry policy
        lease = self._lease(lease_seconds)
        check_consumer_id(consumer_id)

        limited = self._limited_in_scope(names) if limit else []
        freeing = self._slot_limited_queues()  # read here: never inside the transaction

        def body(session: Session) -> SettleResult:
            now = self._now()
            # Completions go through one guarded statement together; results are still
            # reported in the order the outcomes came in.
            applied: dict[int, Job] = {}
            refused: list[int] = []
            completions = [(i, o) for i, o in enumerate(outcomes) if o.kind == OutcomeKind.DONE]
            for _, o in completions:  # a result goes in first, under the same guard
                if o.result is not None:
                    session.run("job_result_set", _result_params(o))
            for i, outcome in enumerate(outcomes):
                if outcome.kind == OutcomeKind.DONE:
                    continue
                try:  # a lost lease changed nothing (its guarded statement matched no row)
                    applied[i] = self._apply_outcome(session, outcome, consumer_id, now)
                except (LeaseLost, JobNotFound):
                    refused.append(i)
            if completions:
                held = [o for _, o in completions]
                finished = self._complete_held(session, held, consumer_id, now)
                notify_dependents(session, finished)
                done = {j.id: j for j in finished}
                for i, outcome in completions:
                    job = done.pop(outcome.job_id, None)  # a repeated outcome is refused
                    if job is None:
                        refused.append(i)
                    else:
                        applied[i] = job
            settled = [applied[i] for i in sorted(applied)]
            lost = [outcomes[i].job_id for i in sorted(refused)]
            session.notify({job.queue for job in settled} & freeing)
            claimed = (
                self._claim(session, consumer_id, limit, names, limited, lease, now)
                if limit
                else []
            )
            return SettleResult(settled, lost, claimed)

        # A claim waits for the disk like every other commit: one committed without fsync
        # could be lost to another writer's failed fsync, and with it every commit after
        # it in the WAL (SQLiteDriver.write).
        single = not outcomes and not limited
        return self.driver.write(body, single_statement=single)

    def _claim(
        self,
        session: Session,
        consumer_id: str,
        limit: int,
        queues: list[str] | None,
        limited: list[QueueControl],
        lease: float,
        now: float | None,
    ) -> list[Job]:
        params: dict[str, Any] = {
            "consumer_id": consumer_id,
            "lease_seconds": lease,
            "now": now,
            "limit": limit,
        }
        jobs: list[Job] = []
        # Limited queues first: they are the ones that may have to wait for a slot.
        # Priority orders jobs within a queue; across queues it is a preference.
        for control in limited:
            if len(jobs) < limit:
                jobs += self._claim_limited(session, control.queue, params, limit - len(jobs))
        params["limit"] = limit - len(jobs)
        if not params["limit"]:
            pass
        elif queues is None:
            jobs += session.jobs("claim_any_queue", params)
        elif len(queues) == 1:
            jobs += session.jobs("claim_one_queue", {**params, "queue": queues[0]})
        else:
            jobs += session.jobs("claim_in_queues", {**params, "queues": queues})
        # RETURNING gives rows in no promised order; hand them out in claim order.
        return sorted(jobs, key=lambda j: (-j.priority, j.run_at, j.id))

    def _complete_held(
        self, session: Session, outcomes: list[Outcome], actor: str | None, now: float | None
    ) -> list[Job]:
        """processing -> done for every outcome whose lease is still held, in one guarded
        statement; the others are simply not returned."""
        params = {
            "now": now,
            "actor": actor,
            "ids": [o.job_id for o in outcomes],
            "held": [f"{o.job_id}:{o.lease_token}" for o in outcomes],
        }
        return session.jobs("jobs_complete_held", params)

    def _apply_outcome(
        self, session: Session, outcome: Outcome, actor: str | None, now: float | None
    ) -> Job:
        if outcome.kind == OutcomeKind.DONE:
            # The guarded statement alone decides; only a refusal reads the job, to tell
            # JobNotFound from LeaseLost.
            params = {**_result_params(outcome), "now": now, "actor": actor}
            for job in session.jobs("job_complete", params):
                notify_dependents(session, [job])
                return job
            self._held(session, outcome.job_id, outcome.lease_token)
            raise LeaseLost(outcome.job_id)
        job = self._held(session, outcome.job_id, outcome.lease_token)
        move = outcome_move(job, outcome, self._current_settings())
        return self._apply(session, job, move, actor or job.consumer_id or "consumer", now)

    def complete(
        self, job_id: int, lease_token: str, *, result: Any = None, connection: object = None
    ) -> Job:
        """processing -> done. Raises ``LeaseLost`` if the caller no longer holds the job.

        ``result``: a JSON value stored with the job (``Job.result``; None stores none).
        ``connection``: complete inside your own open transaction on that connection, so
        your writes and the completion commit together or not at all. If the lease is gone
        it raises ``LeaseLost`` and dooms that transaction (rolled back on SQLite, aborted
        on PostgreSQL): a zombie's writes can never commit with a completion."""
        text = None
        if result is not None:
            limit = self.settings.max_payload_bytes
            text = encode_json(result, f"the result of job {job_id}", limit)
        outcome = Outcome(job_id, lease_token, OutcomeKind.DONE, result=text)
        if connection is None:
            return self._settle_one(outcome)
        try:
            return self._settle_one(outcome, connection=connection)
        except JobNotFound:  # refused all the same: the caller's writes must not commit
            raise LeaseLost(job_id, f"job {job_id} does not exist (any more)") from None

    def fail(self, job_id: int, lease_token: str, error: str, *, retryable: bool = True) -> Job:
        """processing -> failed (retry after backoff) or permanently_failed (dead letter)
        when not retryable or out of attempts. Raises ``LeaseLost``."""
        return self._settle_one(Outcome(job_id, lease_token, OutcomeKind.FAILED, error, retryable))

    def release(self, job_id: int, lease_token: str, *, reason: str | None = None) -> Job:
        """processing -> pending at once, giving the attempt back (e.g. on SIGTERM)."""
        return self._settle_one(Outcome(job_id, lease_token, OutcomeKind.RELEASE, reason))

    def _settle_one(self, outcome: Outcome, *, connection: object = None) -> Job:
        self._refresh_runtime()
        freeing = self._slot_limited_queues()

        def body(session: Session) -> Job:
            job = self._apply_outcome(session, outcome, None, self._now())
            if job.queue in freeing:
                session.notify([job.queue])
            return job

        if connection is not None:  # a refusal dooms the caller's transaction
            return self._write(body, connection=connection)
        # The completion reads only after a miss (and its result is in the statement).
        return self.driver.write(body, single_statement=outcome.kind == OutcomeKind.DONE)

    def progress(
        self, job_id: int, lease_token: str, fraction: float, message: str | None = None
    ) -> None:
        """Record how far the held job got (0..1, and a short text), shown by ``pq show``
        and the consoles while it runs. Not a transition: no history row. Raises
        ``LeaseLost`` if the caller no longer holds the job: a zombie cannot write
        progress."""
        value, text = check_progress(fraction, message)

        def body(session: Session) -> None:
            params = {"id": job_id, "token": lease_token, "progress": value,
                      "message": text, "now": self._now()}  # fmt: skip
            if session.one("job_progress", params) is None:
                self._held(session, job_id, lease_token)
                raise LeaseLost(job_id)

        self.driver.write(body, single_statement=True)

    def heartbeat(
        self, job_id: int, lease_token: str, *, lease_seconds: float | None = None
    ) -> float:
        """Extend the lease; returns the new expiry. Raises ``LeaseLost``."""
        self._refresh_runtime()
        lease = self._lease(lease_seconds)

        def body(session: Session) -> float:
            params = {
                "id": job_id,
                "token": lease_token,
                "now": self._now(),
                "lease_seconds": lease,
            }
            row = session.one("job_heartbeat", params)
            if row is None:
                self._held(session, job_id, lease_token)  # raises the precise error
                raise LeaseLost(job_id)
            return float(row["lease_expires_at"])

        return self.driver.write(body, single_statement=True)

    def wait_for_jobs(self, timeout: float, queues: Sequence[str] | None = None) -> bool:
        """Block up to ``timeout`` seconds until a job may be claimable; True if one is.

        Sleeps on the driver's wake-up (doorbell, LISTEN) until a change makes jobs
        pending, re-checking at least every ``driver.recheck_seconds`` and when a
        delayed job comes due."""
        names = check_queues(queues)
        query = "runnable_wait" if names is None else "runnable_wait_in_queues"
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            self.driver.listen()  # armed before the check: no wake-up is missed
            params = {"now": self._now(), "queues": names}
            limited = self._limited_in_scope(names)

            def check(
                session: Session,
                p: dict[str, Any] = params,
                limited: list[QueueControl] = limited,
            ) -> float | None:
                row = session.one(query, p)
                waits = [None if row is None or row["wait"] is None else float(row["wait"])]
                waits += [self._limited_wait(session, c, p["now"]) for c in limited]
                return min((w for w in waits if w is not None), default=None)

            due_in = self.driver.read(check)
            if due_in is not None and due_in <= 0:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            pause = min(remaining, self.driver.recheck_seconds)
            if due_in is not None:  # a delayed job becomes due without anyone ringing
                pause = min(pause, max(due_in, 0.001))
            self.driver.wait(pause)

    def _lease(self, value: float | None) -> float:
        return lease_seconds(self._current_settings(), value)


def _checked(
    item: str | EnqueueRequest, settings: QueueSettings
) -> tuple[dict[str, Any], tuple[int, ...], DependencyFailure]:
    """One enqueue request checked: its row values, the jobs it waits for, its policy."""
    if isinstance(item, str):
        return enqueue_values(item, settings), (), DependencyFailure.CANCEL
    policy = item.on_dependency_failure
    if policy is not DependencyFailure.CANCEL:  # the default costs no check (the hot path)
        policy = check_dependency_failure(policy)
    after = check_after(item.after) if item.after else ()
    return enqueue_values(item, settings), after, DependencyFailure(policy)


def _result_params(outcome: Outcome) -> dict[str, Any]:
    return {"id": outcome.job_id, "token": outcome.lease_token, "result": outcome.result}
