"""The job state machine: every state a job can be in and every move between them.

This module is the single source of truth. Backends guard each UPDATE with the
expected current state taken from here, and the database mirrors the states
(a CHECK constraint on SQLite), so a transition not listed here cannot happen.
"""

from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    """States of a job. Each comment says who moves jobs in and out."""

    # In: enqueue, release by a consumer, rescue of an expired lease by the
    # manager, retry scheduling by the manager, manual resubmit by an operator.
    # Out: claim by a consumer, cancel or manual mark by an operator.
    PENDING = "pending"
    # In: claim (with a fresh lease token). Out: the lease holder completes,
    # fails or releases it; the manager rescues it once the lease expired or the
    # stall timeout passed; an operator marks it done or failed, or cancels it.
    # A processing job whose lease expired is *stalled*: a condition, not a state.
    PROCESSING = "processing"
    # In: the lease holder completes it, or an operator marks it done. Final.
    DONE = "done"
    # A retryable failure waiting for its backoff (``run_at``). Out: the manager
    # moves it back to pending when due; an operator resubmits, cancels or marks it.
    FAILED = "failed"
    # The dead-letter queue: out of attempts, a non-retryable error, or an
    # operator's "mark failed". Out: only an operator's resubmit or mark done.
    PERMANENTLY_FAILED = "permanently_failed"
    # Cancelled by an operator. Out: only an operator's resubmit.
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        """No worker or the manager will move a job out of a final state."""
        return self in FINAL_STATES


FINAL_STATES = frozenset({JobState.DONE, JobState.PERMANENTLY_FAILED, JobState.CANCELLED})

# Jobs that may still run: a dedupe key is unique among these. The SQL's lists of
# active and final states are generated from these two (pqcore.sql).
ACTIVE_STATES = frozenset({JobState.PENDING, JobState.PROCESSING, JobState.FAILED})
STATE_BY_VALUE = {state.value: state for state in JobState}


class OutcomeKind(enum.StrEnum):
    """What a consumer reports for a job it holds."""

    DONE = "done"
    FAILED = "failed"  # retried after backoff, or dead-lettered (not retryable, out of attempts)
    RELEASE = "release"  # given back unfinished (shutdown): the attempt is returned


class DependencyFailure(enum.StrEnum):
    """What a job does when a job it waits for ends permanently_failed or cancelled
    (the database applies it: migrations 0005, jobs_dependents_resolve)."""

    CANCEL = "cancel"  # it is cancelled too (and so are the jobs waiting for it)
    RUN = "run"  # it runs anyway, once every other job it waits for has finished


class ConsumerState(enum.StrEnum):
    """A consumer process as the registry (``consumers`` table) knows it."""

    IDLE = "idle"  # registered, waiting for work
    BUSY = "busy"  # running a job
    STOPPED = "stopped"  # deregistered on a clean shutdown
    DEAD = "dead"  # silent past the heartbeat timeout: marked by the manager


class Transition(enum.StrEnum):
    """Named moves. The value is what the history (``job_events.action``) records."""

    ENQUEUE = "enqueue"
    CLAIM = "claim"
    COMPLETE = "complete"
    FAIL = "fail"  # retryable, attempts left: to failed
    DEAD_LETTER = "dead_letter"  # non-retryable or out of attempts
    RELEASE = "release"  # the lease holder gives the job back (e.g. SIGTERM)
    RESCUE = "rescue"  # the manager takes back a stalled job
    SCHEDULE_RETRY = "schedule_retry"  # the manager: failed job's backoff is over
    RESUBMIT = "resubmit"  # an operator
    CANCEL = "cancel"  # an operator
    MARK_DONE = "mark_done"  # an operator
    MARK_FAILED = "mark_failed"  # an operator: straight to the dead-letter queue


P, R, D, F, X, C = (
    JobState.PENDING,
    JobState.PROCESSING,
    JobState.DONE,
    JobState.FAILED,
    JobState.PERMANENTLY_FAILED,
    JobState.CANCELLED,
)

# For each named move: the states it may start from and the state it ends in.
TRANSITIONS: dict[Transition, tuple[frozenset[JobState], JobState]] = {
    Transition.CLAIM: (frozenset({P}), R),
    Transition.COMPLETE: (frozenset({R}), D),
    Transition.FAIL: (frozenset({R}), F),
    Transition.DEAD_LETTER: (frozenset({R, F}), X),
    Transition.RELEASE: (frozenset({R}), P),
    Transition.RESCUE: (frozenset({R}), P),
    Transition.SCHEDULE_RETRY: (frozenset({F}), P),
    Transition.RESUBMIT: (frozenset({F, X, C}), P),
    # From processing too: the holder's lease goes with it, so its next heartbeat
    # learns of the cancel and its late outcome is refused.
    Transition.CANCEL: (frozenset({P, R, F}), C),
    Transition.MARK_DONE: (frozenset({P, R, F, X}), D),
    Transition.MARK_FAILED: (frozenset({P, R, F}), X),
}

del P, R, D, F, X, C

# Every (from, to) pair that some transition allows; the doctor audits history against it.
ALLOWED_EDGES: frozenset[tuple[JobState | None, JobState]] = frozenset(
    {(None, JobState.PENDING)}
    | {(src, dst) for sources, dst in TRANSITIONS.values() for src in sources}
)


def target(transition: Transition) -> JobState:
    return TRANSITIONS[transition][1]


def can(transition: Transition, current: JobState) -> bool:
    return current in TRANSITIONS[transition][0]


def parse_state(value: str) -> JobState:
    """Parse user input into a state, with an error that lists the valid ones."""
    from pqcore.exceptions import InvalidArgument

    try:
        return JobState(value.strip().lower())
    except ValueError:
        valid = ", ".join(s.value for s in JobState)
        raise InvalidArgument(f"invalid status {value!r}; expected one of: {valid}") from None
