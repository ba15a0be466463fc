"""What a lease holder reports: complete, fail (retryable or not), release, and
settle_and_claim; wrong tokens are rejected and change nothing."""

from __future__ import annotations

import pytest

from pqcore import (
    InvalidArgument,
    JobNotFound,
    JobState,
    LeaseLost,
    Outcome,
    Queue,
)
from tests.backends import FakeClock, QueueMaker
from tests.conformance.helpers import actions, claim_one, snapshot, token


def test_complete(queue: Queue, clock: FakeClock) -> None:
    queue.enqueue("a")
    held = claim_one(queue, "w1")
    clock.advance(3)
    done = queue.complete(held.id, token(held))
    assert done.status is JobState.DONE
    assert done.lease_token is None and done.lease_expires_at is None
    assert done.finished_at == clock.now and done.error is None and done.attempts == 1
    last = queue.history(held.id)[-1]
    assert (last.from_status, last.to_status, last.action, last.actor, last.attempt) == (
        JobState.PROCESSING,
        JobState.DONE,
        "complete",
        "w1",
        1,
    )


@pytest.mark.parametrize("kind", ["complete", "fail", "release"])
def test_wrong_token_raises_lease_lost_and_changes_nothing(queue: Queue, kind: str) -> None:
    queue.enqueue("a")
    held = claim_one(queue)
    before = snapshot(queue)
    with pytest.raises(LeaseLost):
        if kind == "complete":
            queue.complete(held.id, "wrong")
        elif kind == "fail":
            queue.fail(held.id, "wrong", "err")
        else:
            queue.release(held.id, "wrong")
    assert snapshot(queue) == before
    with pytest.raises(JobNotFound):
        queue.complete(held.id + 1000, token(held))
    assert snapshot(queue) == before


def test_complete_of_a_pending_job_is_lease_lost(queue: Queue) -> None:
    job = queue.enqueue("a")
    with pytest.raises(LeaseLost):
        queue.complete(job.id, "any")
    assert queue.get(job.id).status is JobState.PENDING


def test_retryable_fail_waits_for_backoff(make_queue: QueueMaker, clock: FakeClock) -> None:
    queue = make_queue(clock=clock, backoff_base_seconds=10, backoff_cap_seconds=100)
    queue.enqueue("a")
    held = claim_one(queue, "w1")
    failed = queue.fail(held.id, token(held), "connection refused")
    assert failed.status is JobState.FAILED
    assert failed.error == "connection refused"
    assert failed.lease_token is None and failed.attempts == 1
    # Equal jitter: between half and all of base * 2**(attempt-1).
    assert clock.now + 5 <= failed.run_at <= clock.now + 10
    last = queue.history(held.id)[-1]
    assert (last.from_status, last.to_status, last.action, last.actor) == (
        JobState.PROCESSING,
        JobState.FAILED,
        "fail",
        "w1",
    )
    assert last.detail is not None and "connection refused" in last.detail
    assert queue.claim("w2") == []  # failed jobs are not claimable
    assert queue.schedule_retries() == []  # not due yet
    clock.advance(failed.run_at - clock.now)
    [moved] = queue.schedule_retries()
    assert moved.id == held.id and moved.status is JobState.PENDING and moved.attempts == 1
    assert actions(queue, held.id)[-1] == "schedule_retry"
    again = claim_one(queue, "w2")
    assert again.id == held.id and again.attempts == 2
    second = queue.fail(again.id, token(again), "still down")
    assert clock.now + 10 <= second.run_at <= clock.now + 20  # the delay grows
    assert queue.doctor() == []


def test_backoff_is_capped(make_queue: QueueMaker, clock: FakeClock) -> None:
    queue = make_queue(clock=clock, backoff_base_seconds=10, backoff_cap_seconds=15)
    queue.enqueue("a", max_attempts=10)
    for _ in range(5):
        held = claim_one(queue)
        failed = queue.fail(held.id, token(held), "e")
        assert failed.run_at - clock.now <= 15
        clock.advance(15)
        queue.schedule_retries()
    assert queue.doctor() == []


def test_schedule_retries_moves_only_due_jobs(make_queue: QueueMaker, clock: FakeClock) -> None:
    queue = make_queue(clock=clock, backoff_base_seconds=10, backoff_cap_seconds=10)
    queue.enqueue("early")
    first = claim_one(queue)
    queue.fail(first.id, token(first), "e")
    clock.advance(20)
    queue.enqueue("late")
    second = claim_one(queue)
    queue.fail(second.id, token(second), "e")  # due in 5..10s from now
    moved = queue.schedule_retries()
    assert [j.id for j in moved] == [first.id]
    assert queue.get(second.id).status is JobState.FAILED
    assert queue.get(first.id).status is JobState.PENDING
    assert queue.doctor() == []


def test_schedule_retries_respects_limit(make_queue: QueueMaker, clock: FakeClock) -> None:
    queue = make_queue(clock=clock, backoff_base_seconds=1, backoff_cap_seconds=1)
    queue.enqueue_many([f"j{i}" for i in range(4)])
    for held in queue.claim("w", limit=4):
        queue.fail(held.id, token(held), "e")
    clock.advance(2)
    assert len(queue.schedule_retries(limit=3)) == 3
    assert len(queue.schedule_retries(limit=3)) == 1
    assert queue.doctor() == []


def test_out_of_attempts_goes_to_dead_letter(queue: Queue, clock: FakeClock) -> None:
    job = queue.enqueue("a", max_attempts=2)
    held = claim_one(queue)
    assert queue.fail(held.id, token(held), "first").status is JobState.FAILED
    clock.advance(3600)
    queue.schedule_retries()
    held = claim_one(queue)
    dead = queue.fail(held.id, token(held), "second")
    assert dead.status is JobState.PERMANENTLY_FAILED
    assert dead.error == "second" and dead.attempts == 2 and dead.finished_at == clock.now
    assert queue.stats().dead_letter == 1
    last = queue.history(job.id)[-1]
    assert (last.from_status, last.to_status, last.action) == (
        JobState.PROCESSING,
        JobState.PERMANENTLY_FAILED,
        "dead_letter",
    )
    assert last.detail is not None and "attempts" in last.detail


def test_non_retryable_fail_goes_straight_to_dead_letter(queue: Queue) -> None:
    job = queue.enqueue("a", max_attempts=5)
    held = claim_one(queue)
    dead = queue.fail(held.id, token(held), "malformed input", retryable=False)
    assert dead.status is JobState.PERMANENTLY_FAILED and dead.attempts == 1
    assert dead.error == "malformed input" and dead.lease_token is None
    last = queue.history(job.id)[-1]
    assert last.action == "dead_letter" and last.detail and "not retryable" in last.detail


def test_long_error_text_is_clipped(queue: Queue) -> None:
    queue.enqueue("a")
    held = claim_one(queue)
    failed = queue.fail(held.id, token(held), "trace\n" * 10_000, retryable=False)
    assert failed.error is not None and 1000 < len(failed.error) <= 8 * 1024


def test_release_gives_the_attempt_back(queue: Queue, clock: FakeClock) -> None:
    job = queue.enqueue("a", delay=0)
    held = claim_one(queue, "w1")
    clock.advance(2)
    released = queue.release(held.id, token(held), reason="shutting down")
    assert released.status is JobState.PENDING
    assert released.attempts == 0
    assert released.lease_token is None and released.run_at == clock.now
    last = queue.history(job.id)[-1]
    assert (last.from_status, last.to_status, last.action, last.actor, last.attempt) == (
        JobState.PROCESSING,
        JobState.PENDING,
        "release",
        "w1",
        0,
    )
    assert last.detail == "shutting down"
    again = claim_one(queue, "w2")
    assert again.id == job.id and again.attempts == 1
    with pytest.raises(LeaseLost):
        queue.release(held.id, token(held))


def test_settle_and_claim(queue: Queue) -> None:
    jobs = queue.enqueue_many([f"j{i}" for i in range(6)])
    a, b, c = queue.claim("w1", limit=3)
    result = queue.settle_and_claim(
        [
            Outcome(a.id, token(a), "done"),
            Outcome(b.id, "stale-token", "done"),
            Outcome(c.id, token(c), "failed", "boom", retryable=False),
            Outcome(99_999, "x", "done"),
        ],
        "w1",
        limit=2,
    )
    assert result.lost == [b.id, 99_999]
    assert [(j.id, j.status) for j in result.settled] == [
        (a.id, JobState.DONE),
        (c.id, JobState.PERMANENTLY_FAILED),
    ]
    assert [j.id for j in result.claimed] == [jobs[3].id, jobs[4].id]
    assert all(j.status is JobState.PROCESSING for j in result.claimed)
    assert queue.get(b.id).status is JobState.PROCESSING  # the lost outcome did nothing
    assert queue.history(a.id)[-1].actor == "w1"
    # Settling only, claiming nothing.
    d, e = result.claimed
    only = queue.settle_and_claim(
        [Outcome(d.id, token(d), "release"), Outcome(e.id, token(e), "failed", "x")], "w1", limit=0
    )
    assert only.claimed == [] and only.lost == []
    assert [j.status for j in only.settled] == [JobState.PENDING, JobState.FAILED]


def test_settle_and_claim_with_an_unknown_outcome_kind_changes_nothing(
    queue: Queue,
) -> None:
    queue.enqueue_many(["a", "b"])
    held = claim_one(queue)
    before = snapshot(queue)
    with pytest.raises(InvalidArgument):
        queue.settle_and_claim([Outcome(held.id, token(held), "exploded")], "w1")
    assert snapshot(queue) == before
