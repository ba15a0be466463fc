"""Decisions every backend makes the same way, kept out of the SQL-speaking modules.

Given a job as read, these say which transition applies and with what field values
(a failed job's retry time, a rescued job's history detail, an operator's fresh attempt
budget). Backends then apply the ``Move`` with their own guarded UPDATE, so the two
backends cannot drift apart on policy.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pqcore.backoff import retry_delay
from pqcore.base import clip_error
from pqcore.config import QueueSettings
from pqcore.exceptions import InvalidArgument
from pqcore.models import Job, Outcome
from pqcore.states import JobState, Transition

OPERATOR_TRANSITIONS = frozenset(
    {Transition.RESUBMIT, Transition.CANCEL, Transition.MARK_DONE, Transition.MARK_FAILED}
)


@dataclasses.dataclass(frozen=True)
class Move:
    """A transition to apply to one job: ``fields`` are the target statement's values
    (``error`` always; ``run_at`` and ``attempts`` when the job goes back to pending or
    failed), ``token`` fences a lease holder's move, ``detail`` goes to the history."""

    transition: Transition
    fields: dict[str, Any]
    detail: str | None = None
    token: str | None = None


def outcome_move(job: Job, outcome: Outcome, settings: QueueSettings, now: float) -> Move:
    """What a consumer's reported outcome does to the job it holds."""
    token = outcome.lease_token
    if outcome.kind == "done":
        return Move(Transition.COMPLETE, {"error": None}, token=token)
    if outcome.kind == "release":
        # Giving the job back is not a failed try: the attempt is returned.
        fields = {"attempts": max(job.attempts - 1, 0), "run_at": now, "error": job.error}
        return Move(Transition.RELEASE, fields, outcome.error, token)
    if outcome.kind == "failed":
        error = clip_error(outcome.error) or "failed"
        if outcome.retryable and job.attempts < job.max_attempts:
            delay = retry_delay(
                job.attempts, settings.backoff_base_seconds, settings.backoff_cap_seconds
            )
            fields = {"error": error, "run_at": now + delay}
            return Move(Transition.FAIL, fields, f"{error} (retry in {delay:.1f}s)", token)
        why = "not retryable" if not outcome.retryable else "out of attempts"
        return Move(Transition.DEAD_LETTER, {"error": error}, f"{error} ({why})", token)
    raise InvalidArgument(f"unknown outcome kind {outcome.kind!r}")


def rescue_move(job: Job, why: str, now: float) -> Move:
    """The manager takes back a processing job (lease expired or stalled)."""
    holder = f"{why} (consumer {job.consumer_id}, attempt {job.attempts})"
    if job.attempts >= job.max_attempts:
        text = f"{holder}; out of attempts"
        return Move(Transition.DEAD_LETTER, {"error": text}, text, job.lease_token)
    fields = {"attempts": job.attempts, "run_at": now, "error": job.error}
    return Move(Transition.RESCUE, fields, holder, job.lease_token)


def out_of_attempts_move(job: Job) -> Move:
    """A failed job that has no attempt left goes to the dead-letter queue."""
    detail = f"out of attempts ({job.attempts}/{job.max_attempts})"
    return Move(Transition.DEAD_LETTER, {"error": job.error}, detail)


def retry_move(job: Job, now: float) -> Move:
    """A failed job whose backoff is over becomes pending again."""
    fields = {"attempts": job.attempts, "run_at": now, "error": job.error}
    return Move(
        Transition.SCHEDULE_RETRY, fields, f"retry {job.attempts + 1} of {job.max_attempts}"
    )


def operator_move(
    job: Job, transition: Transition, actor: str, reason: str | None, now: float
) -> Move:
    detail = clip_error(reason)
    if transition is Transition.RESUBMIT:
        # A fresh attempt budget: the operator decided the job deserves another go.
        return Move(transition, {"attempts": 0, "run_at": now, "error": job.error}, detail)
    if transition is Transition.MARK_FAILED:
        return Move(transition, {"error": detail or f"marked failed by {actor}"}, detail)
    if transition is Transition.MARK_DONE:
        return Move(transition, {"error": None}, detail)
    if transition is Transition.CANCEL:
        return Move(transition, {"error": job.error}, detail)
    raise InvalidArgument(f"{transition.value} is not an operator action")


def event_row(
    job_id: int,
    at: float,
    from_status: JobState | None,
    to_status: JobState,
    transition: Transition,
    actor: str,
    attempt: int,
    detail: str | None = None,
) -> dict[str, Any]:
    """The values of one ``job_events`` row."""
    return {
        "job_id": job_id,
        "at": at,
        "from_status": from_status.value if from_status else None,
        "to_status": to_status.value,
        "action": transition.value,
        "actor": actor,
        "attempt": attempt,
        "detail": detail,
    }


# -------------------------------------------------------------------- argument checks


def check_id(job_id: object) -> int:
    if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id < 1:
        raise InvalidArgument(f"job id must be a positive integer, not {job_id!r}")
    return job_id


def check_operator(transition: Transition, actor: str) -> None:
    if not isinstance(actor, str) or not actor.strip():
        raise InvalidArgument("an operator action needs the operator's name (actor)")
    if transition not in OPERATOR_TRANSITIONS:
        raise InvalidArgument(f"{transition.value} is not an operator action")
