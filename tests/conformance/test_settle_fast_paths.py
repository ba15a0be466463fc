"""The batched paths the consumers' hot loop uses: many completions in one guarded
statement, bulk enqueue without dedupe keys. Same guarantees as the one-by-one paths."""

from __future__ import annotations

import pytest

from pqcore import (
    JobNotFound,
    JobState,
    LeaseLost,
    Outcome,
    Queue,
)
from tests.backends import FakeClock


def test_enqueue_many_returns_jobs_in_order_each_with_history(
    queue: Queue,
) -> None:
    jobs = queue.enqueue_many([f"jobs/{i}.txt" for i in range(50)])
    assert [j.data for j in jobs] == [f"jobs/{i}.txt" for i in range(50)]
    assert [j.id for j in jobs] == sorted(j.id for j in jobs)
    assert all(j.status is JobState.PENDING for j in jobs)
    assert [e.action for e in queue.history(jobs[7].id)] == ["enqueue"]
    assert queue.stats().counts["pending"] == 50
    assert queue.doctor() == []


def test_enqueue_many_twice_returns_only_the_new_jobs(queue: Queue) -> None:
    first = queue.enqueue_many(["a", "b"])
    second = queue.enqueue_many(["c"])
    assert [j.data for j in second] == ["c"] and second[0].id > first[-1].id


def test_settle_many_completions_applies_held_and_lists_the_rest_lost(
    queue: Queue, clock: FakeClock
) -> None:
    queue.enqueue_many([f"j{i}" for i in range(5)])
    held = queue.claim("c1", limit=5, lease_seconds=10)
    stale = held[0]
    clock.advance(11)
    [rescued] = queue.rescue_expired(limit=1)  # the oldest lease goes first
    assert rescued.id == stale.id
    outcomes = [Outcome(j.id, j.lease_token or "", "done") for j in held]
    outcomes.append(Outcome(held[1].id, held[1].lease_token or "", "done"))  # reported twice
    outcomes.append(Outcome(held[2].id, "not-the-token", "done"))
    result = queue.settle_and_claim(outcomes, "c1", limit=0)
    assert sorted(j.id for j in result.settled) == sorted(j.id for j in held[1:])
    assert all(j.status is JobState.DONE for j in result.settled)
    assert sorted(result.lost) == sorted([stale.id, held[1].id, held[2].id])
    assert queue.get(stale.id).status is JobState.PENDING
    events = queue.history(held[3].id)
    assert [e.action for e in events] == ["enqueue", "claim", "complete"]
    assert events[-1].actor == "c1"
    assert queue.doctor() == []


def test_complete_tells_a_missing_job_from_a_lost_lease(queue: Queue, clock: FakeClock) -> None:
    queue.enqueue("x")
    [held] = queue.claim("c1", lease_seconds=5)
    with pytest.raises(JobNotFound):
        queue.complete(held.id + 1000, "whatever")
    with pytest.raises(LeaseLost):
        queue.complete(held.id, "wrong-token")
    clock.advance(6)
    queue.rescue_expired()
    with pytest.raises(LeaseLost):
        queue.complete(held.id, held.lease_token or "")
    [again] = queue.claim("c2")
    done = queue.complete(again.id, again.lease_token or "")
    assert done.status is JobState.DONE
    assert queue.history(again.id)[-1].actor == "c2"
    with pytest.raises(LeaseLost):
        queue.complete(again.id, again.lease_token or "")  # never twice
