"""Decisions every backend makes the same way, kept out of the SQL-speaking modules.

Given a job as read, these say which transition applies and with what field values
(a failed job's retry delay, a rescued job's history detail, an operator's fresh attempt
budget). The queue then applies the ``Move`` with one guarded statement. Times are
delays from the queue's clock, never absolute times read from this host's clock, so a
host whose clock is wrong cannot schedule a retry early.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pqcore.backoff import retry_delay
from pqcore.config import QueueSettings
from pqcore.exceptions import InvalidArgument
from pqcore.models import Job, Outcome
from pqcore.states import OutcomeKind, Transition
from pqcore.validation import clip_error


@dataclasses.dataclass(frozen=True)
class Move:
    """A transition to apply to one job: ``fields`` are the target statement's values
    (``error`` always; ``delay``, seconds from now until it may run, and ``attempts`` when
    the job goes back to pending or failed), ``token`` fences a lease holder's move,
    ``detail`` goes to the history."""

    transition: Transition
    fields: dict[str, Any]
    detail: str | None = None
    token: str | None = None


def outcome_move(job: Job, outcome: Outcome, settings: QueueSettings) -> Move:
    """What a consumer's reported outcome does to the job it holds."""
    token = outcome.lease_token
    if outcome.kind == OutcomeKind.DONE:
        return Move(Transition.COMPLETE, {"error": None}, token=token)
    if outcome.kind == OutcomeKind.RELEASE:
        # Giving the job back is not a failed try: the attempt is returned.
        fields = {"attempts": max(job.attempts - 1, 0), "delay": 0.0, "error": job.error}
        return Move(Transition.RELEASE, fields, outcome.error, token)
    if outcome.kind == OutcomeKind.FAILED:
        error = clip_error(outcome.error) or "failed"
        if outcome.retryable and job.attempts < job.max_attempts:
            delay = retry_delay(
                job.attempts, settings.backoff_base_seconds, settings.backoff_cap_seconds
            )
            fields = {"error": error, "delay": delay}
            return Move(Transition.FAIL, fields, f"{error} (retry in {delay:.1f}s)", token)
        why = "not retryable" if not outcome.retryable else "out of attempts"
        return Move(Transition.DEAD_LETTER, {"error": error}, f"{error} ({why})", token)
    raise InvalidArgument(f"unknown outcome kind {outcome.kind!r}")


def rescue_move(job: Job, why: str) -> Move:
    """The manager takes back a processing job (lease expired or stalled)."""
    holder = f"{why} (consumer {job.consumer_id}, attempt {job.attempts})"
    if job.attempts >= job.max_attempts:
        text = f"{holder}; out of attempts"
        return Move(Transition.DEAD_LETTER, {"error": text}, text, job.lease_token)
    fields = {"attempts": job.attempts, "delay": 0.0, "error": job.error}
    return Move(Transition.RESCUE, fields, holder, job.lease_token)


def out_of_attempts_move(job: Job) -> Move:
    """A failed job that has no attempt left goes to the dead-letter queue."""
    detail = f"out of attempts ({job.attempts}/{job.max_attempts})"
    return Move(Transition.DEAD_LETTER, {"error": job.error}, detail)


def retry_move(job: Job) -> Move:
    """A failed job whose backoff is over becomes pending again."""
    fields = {"attempts": job.attempts, "delay": 0.0, "error": job.error}
    return Move(
        Transition.SCHEDULE_RETRY, fields, f"retry {job.attempts + 1} of {job.max_attempts}"
    )


def operator_move(job: Job, transition: Transition, actor: str, reason: str | None) -> Move:
    detail = clip_error(reason)
    if transition is Transition.RESUBMIT:
        # A fresh attempt budget: the operator decided the job deserves another go.
        return Move(transition, {"attempts": 0, "delay": 0.0, "error": job.error}, detail)
    if transition is Transition.MARK_FAILED:
        return Move(transition, {"error": detail or f"marked failed by {actor}"}, detail)
    if transition is Transition.MARK_DONE:
        return Move(transition, {"error": None}, detail)
    if transition is Transition.CANCEL:
        return Move(transition, {"error": job.error}, detail)
    raise InvalidArgument(f"{transition.value} is not an operator action")


def dependency_cancel_move(job_id: int, state: str) -> Move:
    """A new job whose policy is to be cancelled names a job that already ended ``state``
    (permanently_failed or cancelled): it is cancelled at once, as the database cancels
    the ones that were already waiting (migrations 0005: jobs_dependents_resolve)."""
    why = f"job {job_id}, which it depends on, ended {state}"
    return Move(Transition.CANCEL, {"error": why}, why)
