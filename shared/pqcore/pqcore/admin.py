"""The queue's operator actions, the manager's maintenance, the consumer registry,
leadership and the doctor's audit."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from pqcore.core import QueueCore
from pqcore.driver import Session, Sql
from pqcore.exceptions import InvalidArgument, InvalidTransition, JobChanged
from pqcore.models import Job, JobFilter
from pqcore.policy import operator_move, out_of_attempts_move, rescue_move, retry_move
from pqcore.reading import filter_sql
from pqcore.states import ALLOWED_EDGES, ConsumerState, JobState, Transition, can
from pqcore.validation import (
    check_consumer_id,
    check_id,
    check_limit,
    check_operator,
    finite,
)

BULK_CHUNK = 500
LIVE_CONSUMER_STATES = (ConsumerState.IDLE, ConsumerState.BUSY)


class Administration(QueueCore):
    # ---------------------------------------------------------------- operators

    def resubmit(self, job_id: int, *, actor: str, reason: str | None = None) -> Job:
        """failed | permanently_failed | cancelled -> pending, with a fresh attempt budget."""
        return self.operator_action(Transition.RESUBMIT, job_id, actor=actor, reason=reason)

    def cancel(self, job_id: int, *, actor: str, reason: str | None = None) -> Job:
        """pending | processing | failed -> cancelled. A running job's holder loses its
        lease: its next heartbeat raises ``JobCancelled`` and its outcome is refused."""
        return self.operator_action(Transition.CANCEL, job_id, actor=actor, reason=reason)

    def mark_done(self, job_id: int, *, actor: str, reason: str | None = None) -> Job:
        """Any unfinished job, or a dead-lettered one -> done. A holder's lease is revoked."""
        return self.operator_action(Transition.MARK_DONE, job_id, actor=actor, reason=reason)

    def mark_failed(self, job_id: int, *, actor: str, reason: str | None = None) -> Job:
        """pending | processing | failed -> permanently_failed (the dead-letter queue)."""
        return self.operator_action(Transition.MARK_FAILED, job_id, actor=actor, reason=reason)

    def operator_action(
        self,
        transition: Transition,
        job_id: int,
        *,
        actor: str,
        reason: str | None = None,
        seen_event: int | None = None,
    ) -> Job:
        """Apply an operator's transition to one job, recorded under ``actor``.

        ``seen_event`` is the id of the newest history event the operator saw (a page
        showing the job): if the job moved since, nothing is applied and ``JobChanged``
        says who moved it, how and when, rather than acting on a state nobody looked at.
        """
        job_id = check_id(job_id)
        check_operator(transition, actor)
        if seen_event is not None:
            seen_event = check_id(seen_event)

        def body(session: Session) -> Job:
            job = self._read_job(session, job_id)
            if seen_event is not None:
                last = session.one("last_event_for_job", {"job_id": job_id})
                if last is not None and int(last["id"]) > seen_event:
                    raise JobChanged(
                        job_id, transition.value, job.status.value,
                        action=last["action"], by=last["actor"], at=float(last["at"]),
                    )  # fmt: skip
            return self._operate(session, job, transition, actor, reason, self._now())

        return self.driver.write(body)

    def _operate(
        self,
        session: Session,
        job: Job,
        transition: Transition,
        actor: str,
        reason: str | None,
        now: float | None,
    ) -> Job:
        if transition is Transition.RESUBMIT and job.dedupe_key is not None:
            # Active again: not while another active job holds its dedupe key.
            holder = session.one("job_by_active_dedupe_key", {"dedupe_key": job.dedupe_key})
            if holder is not None and holder["id"] != job.id:
                raise InvalidTransition(
                    job.id, transition.value, job.status.value,
                    f"cannot resubmit job {job.id}: active job {holder['id']} holds its"
                    f" dedupe key {job.dedupe_key!r}",
                )  # fmt: skip
        move = operator_move(job, transition, actor, reason)
        return self._apply(session, job, move, actor, now)

    def bulk_action(
        self,
        transition: Transition,
        flt: JobFilter,
        *,
        actor: str,
        reason: str | None = None,
        limit: int | None = None,
    ) -> tuple[int, int]:
        """Apply an operator's transition to every job matching the filter that may take it,
        in chunks of short transactions. Returns (applied, skipped because they changed)."""
        check_operator(transition, actor)
        sources = [s for s in (flt.statuses or tuple(JobState)) if can(transition, s)]
        if not sources:
            return 0, 0
        where, params = filter_sql(dataclasses.replace(flt, statuses=tuple(sources)))
        statement = Sql(
            "SELECT * FROM jobs WHERE " + " AND ".join(where) + " AND id < :before_id"
            " ORDER BY id DESC LIMIT :chunk"
        )
        applied = skipped = 0
        before = 2**62
        while limit is None or applied + skipped < limit:
            chunk = BULK_CHUNK if limit is None else min(BULK_CHUNK, limit - applied - skipped)
            page = {**params, "before_id": before, "chunk": chunk}

            def body(session: Session, page: dict[str, Any] = page) -> tuple[int, int, int | None]:
                done = missed = 0
                last = None
                now = self._now()
                for job in session.jobs(statement, page):
                    last = job.id
                    try:  # a job that changed meanwhile is skipped; nothing was written
                        self._operate(session, job, transition, actor, reason, now)
                        done += 1
                    except InvalidTransition:
                        missed += 1
                return done, missed, last

            done, missed, last = self.driver.write(body)
            applied, skipped = applied + done, skipped + missed
            if last is None:
                break
            before = last
        return applied, skipped

    # ---------------------------------------------------------------- maintenance

    def rescue_expired(self, *, limit: int = 1000) -> list[Job]:
        """Processing jobs whose lease expired -> pending (or dead letter when out of attempts)."""
        return self._rescue("expired_leases", {"limit": limit}, "lease expired")

    def expired_leases(self, *, limit: int = 1000) -> list[Job]:
        """Processing jobs whose lease has expired by the queue's clock; nothing moves.
        The first look of a confirmed rescue (``pqcore.rescue.ConfirmedRescue``)."""
        params = {"limit": check_limit(limit), "now": self._now()}
        return self.driver.read(lambda s: s.jobs("expired_leases_read", params))

    def rescue_unrenewed(self, seen: Sequence[Job], *, why: str = "lease expired") -> list[Job]:
        """The second look: rescue each job of ``seen`` (read by ``expired_leases``) whose
        lease is still exactly the one seen (same token, same expiry: never renewed
        since) and still expired. Jobs renewed, settled or moved meanwhile stay as they
        are. Returns the jobs moved (pending, or dead letter when out of attempts)."""
        leases = {job.id: (job.lease_token, job.lease_expires_at) for job in seen}
        if not leases:
            return []

        def body(session: Session) -> list[Job]:
            now = self._now()
            params = {"ids": sorted(leases), "now": now}
            return [
                self._apply(session, job, rescue_move(job, why), "manager", now)
                for job in session.jobs("expired_leases_among", params)
                if leases[job.id] == (job.lease_token, job.lease_expires_at)
            ]

        return self.driver.write(body)

    def rescue_stalled(self, stall_timeout: float, *, limit: int = 1000) -> list[Job]:
        """Processing jobs started longer than ``stall_timeout`` ago, even if heartbeating."""
        if not stall_timeout > 0:
            raise InvalidArgument("stall_timeout must be positive")
        params = {"limit": limit, "stall_timeout": stall_timeout}
        why = f"processing longer than {stall_timeout:g}s"
        return self._rescue("stalled_processing", params, why)

    def _rescue(self, select: str, params: dict[str, Any], why: str) -> list[Job]:
        check_limit(params["limit"])

        def body(session: Session) -> list[Job]:
            now = self._now()
            return [
                self._apply(session, job, rescue_move(job, why), "manager", now)
                for job in session.jobs(select, {**params, "now": now})
            ]

        return self.driver.write(body)

    def schedule_retries(self, *, limit: int = 1000) -> list[Job]:
        """failed jobs whose backoff is over -> pending; out of attempts -> dead letter."""
        check_limit(limit)

        def body(session: Session) -> list[Job]:
            now = self._now()
            moved = [
                self._apply(session, job, out_of_attempts_move(job), "manager", now)
                for job in session.jobs("failed_out_of_attempts", {"limit": limit})
            ]
            for job in session.jobs("due_retries", {"now": now, "limit": limit}):
                moved.append(self._apply(session, job, retry_move(job), "manager", now))
            return moved

        return self.driver.write(body)

    def purge_done(self, older_than: float, *, limit: int = 10_000) -> int:
        """Delete done jobs (and their history) finished more than ``older_than`` seconds ago."""
        if not older_than >= 0:
            raise InvalidArgument("older_than must not be negative")
        check_limit(limit, 1_000_000)
        params = {"now": self._now(), "older_than": older_than, "limit": limit}
        return self.driver.write(lambda s: s.run("done_purge", params), single_statement=True)

    # ---------------------------------------------------------------- consumer registry

    def _change(self, query: str, params: dict[str, Any]) -> list[Any]:
        return self.driver.write(lambda s: s.all(query, params), single_statement=True)

    def consumer_register(self, consumer_id: str, *, host: str, pid: int, queues: str) -> None:
        check_consumer_id(consumer_id)
        params = {"id": consumer_id, "host": host, "pid": pid, "queues": queues}
        self._change("consumer_register", {**params, "now": self._now()})

    def consumer_heartbeat(
        self,
        consumer_id: str,
        *,
        state: str,
        current_job_id: int | None,
        jobs_done: int,
        jobs_failed: int,
    ) -> bool:
        """Refresh the consumer's row; False if it is unknown (then register again)."""
        if state not in LIVE_CONSUMER_STATES:
            raise InvalidArgument("a live consumer is idle or busy")
        params = {
            "id": consumer_id,
            "now": self._now(),
            "state": ConsumerState(state).value,
            "current_job_id": current_job_id,
            "jobs_done": jobs_done,
            "jobs_failed": jobs_failed,
        }
        return bool(self._change("consumer_heartbeat", params))

    def consumer_deregister(self, consumer_id: str) -> None:
        self._change("consumer_deregister", {"id": consumer_id, "now": self._now()})

    def consumers_mark_dead(self, heartbeat_timeout: float) -> list[str]:
        """Consumers silent for longer than ``heartbeat_timeout`` -> dead. Returns their ids."""
        params = {"now": self._now(), "timeout": finite(heartbeat_timeout, "heartbeat_timeout")}
        return [row["id"] for row in self._change("consumers_mark_dead", params)]

    def consumers_purge(self, older_than: float) -> int:
        """Forget stopped or dead consumers silent for longer than ``older_than`` seconds."""
        params = {"now": self._now(), "older_than": older_than}
        return self.driver.write(lambda s: s.run("consumers_purge", params), single_statement=True)

    # ---------------------------------------------------------------- leadership

    def leader_attempt_elect(self, name: str, holder: str, ttl: float) -> bool:
        """Become or stay the leader ``name`` for ``ttl`` seconds; False if another holds it."""
        params = {"name": name, "holder": holder, "now": self._now(), "ttl": ttl}
        return bool(self._change("leader_attempt_elect", params))

    def leader_resign(self, name: str, holder: str) -> None:
        self.driver.write(
            lambda s: s.run("leader_resign", {"name": name, "holder": holder}),
            single_statement=True,
        )

    # ---------------------------------------------------------------- audit

    def doctor(self) -> list[str]:
        """Check storage integrity and the queue's invariants; returns the problems found."""
        return self.driver.storage_problems() + self.driver.read(_audit, snapshot=True)


def _audit(session: Session) -> list[str]:
    problems: list[str] = []
    for r in session.all("audit_completed_twice"):
        problems.append(f"job {r['job_id']} was completed {r['n']} times")
    for r in session.all("audit_done_without_event"):
        problems.append(f"job {r['id']} is done but its history has no completion")
    for r in session.all("audit_status_differs_from_history"):
        problems.append(f"job {r['id']} is {r['status']} but its history ends in {r['last']}")
    for r in session.all("audit_job_without_history"):
        problems.append(f"job {r['id']} has no history")
    for r in session.all("audit_lease_mismatch"):
        problems.append(f"job {r['id']} is {r['status']} with an inconsistent lease")
    for r in session.all("audit_counts"):
        problems.append(
            f"count of {r['status']} jobs in queue {r['queue']} is {r['counted']},"
            f" actually {r['actual']}"
        )
    for r in session.all("audit_edges"):
        source, dest = r["from_status"], r["to_status"]
        edge = (JobState(source) if source else None, JobState(dest))
        if edge not in ALLOWED_EDGES:
            problems.append(f"history holds a transition {source} -> {dest} not allowed")
    for r in session.all("audit_active_dedupe_duplicates"):
        problems.append(f"dedupe key {r['dedupe_key']!r} is held by {r['n']} active jobs")
    for r in session.all("audit_waiting_count"):
        problems.append(
            f"job {r['id']} counts {r['waiting_for']} jobs to wait for, but {r['open']}"
            " of its dependencies are open"
        )
    for r in session.all("audit_dependency_open_after_final"):
        problems.append(
            f"job {r['job_id']} still waits for job {r['depends_on']}, which is {r['status']}"
        )
    for r in session.all("audit_claimed_before_dependency"):
        problems.append(
            f"job {r['job_id']} was claimed before job {r['depends_on']}, which it depends on,"
            " had finished"
        )
    return problems
