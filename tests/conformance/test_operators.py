"""Operator actions (resubmit, cancel, mark done, mark failed), one job at a time and in
bulk: allowed from the issue's states only, recorded under the operator's name."""

from __future__ import annotations

import pytest

from pqcore import (
    InvalidArgument,
    InvalidTransition,
    Job,
    JobFilter,
    JobNotFound,
    JobState,
    LeaseLost,
    Queue,
    Transition,
)
from tests.backends import FakeClock
from tests.conformance.helpers import claim_one, snapshot, token

P, R, D, F, X, C = (
    "pending",
    "processing",
    "done",
    "failed",
    "permanently_failed",
    "cancelled",
)

# Written out from the issue, not read from pqcore, so the table is checked, not echoed.
ALLOWED = {
    "resubmit": ({F, X, C}, P),
    "cancel": ({P, R, F}, C),
    "mark_done": ({P, R, F, X}, D),
    "mark_failed": ({P, R, F}, X),
}
CASES = [(action, state) for action in ALLOWED for state in (P, R, D, F, X, C)]


def make_job_in(queue: Queue, state: str, data: str = "job") -> Job:
    """A job brought into ``state`` through the public interface."""
    job = queue.enqueue(data, max_attempts=3)
    if state == P:
        return job
    if state == C:
        return queue.cancel(job.id, actor="setup")
    held = claim_one(queue, "w-setup", queues=[job.queue])
    assert held.id == job.id
    if state == R:
        return held
    if state == D:
        return queue.complete(held.id, token(held))
    return queue.fail(held.id, token(held), "setup failure", retryable=state == F)


def apply(queue: Queue, action: str, job_id: int, actor: str) -> Job:
    method = getattr(queue, action)
    return method(job_id, actor=actor, reason=f"{action} by hand")  # type: ignore[no-any-return]


@pytest.mark.parametrize(("action", "state"), CASES, ids=[f"{a}-from-{s}" for a, s in CASES])
def test_operator_action_from_every_state(
    queue: Queue, clock: FakeClock, action: str, state: str
) -> None:
    job = make_job_in(queue, state)
    sources, destination = ALLOWED[action]
    clock.advance(1)
    if state not in sources:
        before = snapshot(queue)
        with pytest.raises(InvalidTransition) as raised:
            apply(queue, action, job.id, "alice")
        assert raised.value.job_id == job.id and raised.value.current == state
        assert state in str(raised.value)
        assert snapshot(queue) == before
        return
    moved = apply(queue, action, job.id, "alice")
    assert moved.status.value == destination
    assert moved.lease_token is None and moved.lease_expires_at is None
    last = queue.history(job.id)[-1]
    assert (last.from_status, last.to_status, last.action, last.actor) == (
        JobState(state),
        JobState(destination),
        action,
        "alice",
    )
    assert last.detail == f"{action} by hand" and last.at == clock.now
    if action == "resubmit":
        assert moved.attempts == 0 and moved.run_at == clock.now  # a fresh attempt budget
        assert claim_one(queue).id == job.id
    if destination in (D, X):
        assert moved.finished_at == clock.now
    if action == "mark_failed":
        assert moved.error
    if action == "mark_done":
        assert moved.error is None


def test_cancel_a_done_job_is_refused(queue: Queue) -> None:
    job = make_job_in(queue, D)
    with pytest.raises(InvalidTransition, match="done"):
        queue.cancel(job.id, actor="op")
    assert queue.get(job.id).status is JobState.DONE


def test_mark_done_revokes_the_holders_lease(queue: Queue) -> None:
    held = make_job_in(queue, R)
    done = queue.mark_done(held.id, actor="op", reason="did it by hand")
    assert done.status is JobState.DONE and done.lease_token is None
    with pytest.raises(LeaseLost):
        queue.complete(held.id, token(held))
    with pytest.raises(LeaseLost):
        queue.heartbeat(held.id, token(held))
    events = queue.history(held.id)
    assert sum(e.to_status is JobState.DONE for e in events) == 1


def test_mark_failed_revokes_the_holders_lease(queue: Queue) -> None:
    held = make_job_in(queue, R)
    queue.mark_failed(held.id, actor="op")
    with pytest.raises(LeaseLost):
        queue.fail(held.id, token(held), "late")
    assert queue.get(held.id).status is JobState.PERMANENTLY_FAILED


def test_operator_action_by_transition_value(queue: Queue) -> None:
    job = queue.enqueue("a")
    moved = queue.operator_action(Transition.CANCEL, job.id, actor="bob")
    assert moved.status is JobState.CANCELLED
    with pytest.raises(InvalidArgument):  # not an operator's move
        queue.operator_action(Transition.COMPLETE, job.id, actor="bob")
    with pytest.raises(InvalidArgument):  # an operator must say who they are
        queue.operator_action(Transition.RESUBMIT, job.id, actor="  ")
    with pytest.raises(JobNotFound):
        queue.cancel(10_000, actor="bob")
    with pytest.raises(InvalidArgument):
        queue.cancel(0, actor="bob")
    assert queue.get(job.id).status is JobState.CANCELLED


def test_bulk_action_applies_to_matching_jobs_only(queue: Queue, clock: FakeClock) -> None:
    failed = [make_job_in(queue, F, f"mail/{i}") for i in range(3)]
    dead = make_job_in(queue, X, "mail/dead")
    done = make_job_in(queue, D, "mail/done")
    other_queue = queue.enqueue("img/1", queue="images")
    pending = queue.enqueue("mail/pending")
    applied, skipped = queue.bulk_action(
        Transition.RESUBMIT,
        JobFilter(statuses=(JobState.FAILED, JobState.PERMANENTLY_FAILED, JobState.DONE)),
        actor="carol",
        reason="upstream fixed",
    )
    assert (applied, skipped) == (4, 0)
    for job in [*failed, dead]:
        assert queue.get(job.id).status is JobState.PENDING
        last = queue.history(job.id)[-1]
        assert (last.action, last.actor, last.detail) == ("resubmit", "carol", "upstream fixed")
    assert queue.get(done.id).status is JobState.DONE

    # Cancel pending jobs whose payload mentions mail, in the default queue only.
    applied, skipped = queue.bulk_action(
        Transition.CANCEL,
        JobFilter(statuses=(JobState.PENDING,), queue="default", text="mail/"),
        actor="carol",
    )
    assert (applied, skipped) == (5, 0)
    assert queue.get(pending.id).status is JobState.CANCELLED
    assert queue.get(other_queue.id).status is JobState.PENDING
    # No eligible job: nothing applied.
    assert queue.bulk_action(
        Transition.CANCEL, JobFilter(statuses=(JobState.DONE,)), actor="carol"
    ) == (0, 0)


def test_bulk_action_limit(queue: Queue) -> None:
    queue.enqueue_many([f"j{i}" for i in range(7)])
    applied, _ = queue.bulk_action(
        Transition.MARK_FAILED, JobFilter(statuses=(JobState.PENDING,)), actor="op", limit=5
    )
    assert applied == 5
    assert queue.stats().counts["permanently_failed"] == 5
    assert queue.stats().counts["pending"] == 2


def test_bulk_action_across_many_chunks(queue: Queue) -> None:
    queue.enqueue_many([f"j{i}" for i in range(1203)])
    applied, skipped = queue.bulk_action(Transition.CANCEL, JobFilter(), actor="op")
    assert (applied, skipped) == (1203, 0)
    assert queue.count_jobs(JobFilter(statuses=(JobState.CANCELLED,))) == 1203


def test_bulk_action_rejects_non_operator_moves(queue: Queue) -> None:
    queue.enqueue("a")
    with pytest.raises(InvalidArgument):
        queue.bulk_action(Transition.CLAIM, JobFilter(), actor="op")
    with pytest.raises(InvalidArgument):
        queue.bulk_action(Transition.CANCEL, JobFilter(), actor="")
    assert queue.stats().counts["pending"] == 1
