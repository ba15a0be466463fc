"""What every part of the queue shares: its driver, settings and clock, and the one
guarded transition every move goes through."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Self, TypeVar

from pqcore.config import QueueSettings
from pqcore.driver import Driver, Session, StorageErrorListener
from pqcore.exceptions import InvalidTransition, JobCancelled, JobNotFound, LeaseLost
from pqcore.models import Job
from pqcore.policy import Move
from pqcore.states import JobState, can, target

TARGET_QUERY = {JobState.PENDING: "job_to_pending", JobState.FAILED: "job_to_failed"}
T = TypeVar("T")


def notify_dependents(session: Session, moved: Sequence[Job]) -> None:
    """Jobs that just reached a final state with jobs waiting for them have resolved
    those in the same statement (migrations: jobs_dependents_resolve): ring for them.
    (The doorbell and LISTEN wake every waiter; the queue named is a hint.)"""
    queues = {job.queue for job in moved if job.has_dependents and job.status.is_final}
    if queues:
        session.notify(queues)


class QueueCore:
    def __init__(
        self,
        driver: Driver,
        settings: QueueSettings,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.driver = driver
        self.settings = settings
        # Tests inject a clock (River's optional "now"); otherwise time is the driver's,
        # which on PostgreSQL is the server's, never this host's.
        self.clock = clock
        self.backend = driver.name

    def __repr__(self) -> str:
        return f"Queue({self.driver.name}: {self.driver.where!r})"

    def _now(self) -> float | None:
        return self.clock() if self.clock is not None else self.driver.now()

    def close(self) -> None:
        self.driver.close()

    def on_storage_error(self, listener: StorageErrorListener) -> None:
        """Call ``listener(error)`` for each ``StorageError`` of work the queue does on
        its own after a call succeeded (SQLite's checkpoints): the call's result stands,
        so no exception can tell its caller that the disk is failing. Without a listener
        they are logged (logger ``pqcore.storage``, WARNING)."""
        self.driver.on_storage_error(listener)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _apply(self, session: Session, job: Job, move: Move, actor: str, now: float | None) -> Job:
        """Apply ``move`` to ``job`` with one guarded statement; the database writes its
        history row in the same statement (migrations: jobs_history triggers).

        The statement matches only while the job is still in the state it was read in
        (and, for a lease holder, still carries the token): if another actor moved it
        first, nothing changes and a ``Conflict`` is raised.
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
            "to_status": to.value,
            **move.fields,
        }
        moved = session.jobs(TARGET_QUERY.get(to, "job_to_final"), params)
        if not moved:
            if move.token is not None:
                raise LeaseLost(job.id)
            why = f"job {job.id} changed while {transition.value} ran"
            raise InvalidTransition(job.id, transition.value, job.status.value, why)
        if to is JobState.PENDING:
            session.notify([job.queue])
        notify_dependents(session, moved)
        return moved[0]

    def _write(
        self,
        body: Callable[[Session], T],
        *,
        connection: object = None,
        single_statement: bool = False,
        idempotent: bool = True,
    ) -> T:
        """Run ``body`` in a write transaction of the queue's own, or inside the caller's
        open transaction on ``connection`` (``Driver.borrowed``)."""
        if connection is not None:
            return self.driver.borrowed(connection, body)
        return self.driver.write(body, single_statement=single_statement, idempotent=idempotent)

    def wake(self, queues: Iterable[str] | None = None) -> None:
        """Wake idle consumers now: after committing jobs enqueued on your own SQLite
        connection (``connection=``), whose commit the doorbell cannot hear. Without it
        they find the jobs at their next re-check (at most ``driver.recheck_seconds``)."""
        self.driver.wake(["*"] if queues is None else queues)

    def _read_job(self, session: Session, job_id: int) -> Job:
        found = session.jobs("job_get", {"id": job_id})
        if not found:
            raise JobNotFound(job_id)
        return found[0]

    def _held(self, session: Session, job_id: int, token: str) -> Job:
        """The job, if ``token`` still holds it; else ``JobNotFound`` or ``LeaseLost``."""
        job = self._read_job(session, job_id)
        if job.status is JobState.CANCELLED:
            raise JobCancelled(job_id)
        if job.status is not JobState.PROCESSING or job.lease_token != token:
            raise LeaseLost(job_id)
        return job

    @staticmethod
    def _audit(
        session: Session,
        *,
        actor: str,
        action: str,
        target: str,
        old: object = None,
        new: object = None,
        detail: str | None = None,
        now: float | None,
    ) -> None:
        """Record an operator's change in the audit trail, in the change's transaction.
        Values are stored as JSON; None stays NULL."""
        session.run(
            "audit_insert",
            {
                "now": now,
                "actor": actor,
                "action": action,
                "target": target,
                "old_value": None if old is None else json.dumps(old, sort_keys=True),
                "new_value": None if new is None else json.dumps(new, sort_keys=True),
                "detail": detail,
            },
        )
