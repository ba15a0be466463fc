"""Consumers: claiming, leases, heartbeats and fencing of zombie lease holders."""

from __future__ import annotations

import pytest

from pqcore import InvalidArgument, JobNotFound, JobState, LeaseLost, Queue
from tests.backends import FakeClock, QueueMaker
from tests.conformance.helpers import actions, claim_one, snapshot, token


def test_claim_sets_lease_and_counts_the_attempt(queue: Queue, clock: FakeClock) -> None:
    job = queue.enqueue("a")
    held = claim_one(queue, "worker-7", lease_seconds=42)
    assert held.id == job.id
    assert held.status is JobState.PROCESSING
    assert held.attempts == 1
    assert held.consumer_id == "worker-7"
    assert held.lease_expires_at == clock.now + 42
    assert held.started_at == clock.now and held.finished_at is None
    assert queue.get(job.id) == held
    claim = queue.history(job.id)[-1]
    assert (claim.from_status, claim.to_status, claim.action) == (
        JobState.PENDING,
        JobState.PROCESSING,
        "claim",
    )
    assert claim.actor == "worker-7" and claim.attempt == 1


def test_default_lease_comes_from_settings(make_queue: QueueMaker, clock: FakeClock) -> None:
    queue = make_queue(clock=clock, lease_seconds=7)
    queue.enqueue("a")
    assert claim_one(queue).lease_expires_at == clock.now + 7
    assert queue.doctor() == []


def test_claim_respects_limit(queue: Queue) -> None:
    queue.enqueue_many([f"j{i}" for i in range(5)])
    assert len(queue.claim("c1", limit=3)) == 3
    assert len(queue.claim("c2", limit=3)) == 2
    assert queue.claim("c3", limit=3) == []
    assert queue.claim("c4", limit=0) == []


def test_claim_on_empty_queue(queue: Queue) -> None:
    assert queue.claim("c1") == []
    assert queue.claim("c1", queues=["nothing-here"]) == []


def test_tokens_are_distinct_and_jobs_never_shared(queue: Queue) -> None:
    queue.enqueue_many([f"j{i}" for i in range(20)])
    batches = [queue.claim(f"c{i}", limit=3) for i in range(8)]
    jobs = [j for batch in batches for j in batch]
    assert len(jobs) == 20
    assert len({j.id for j in jobs}) == 20
    assert len({token(j) for j in jobs}) == 20
    assert all(len(token(j)) >= 16 for j in jobs)


def test_claim_filters_by_queue(queue: Queue) -> None:
    mail = queue.enqueue("m", queue="mail")
    image = queue.enqueue("i", queue="images", priority=10)
    other = queue.enqueue("o", queue="other")
    assert [j.id for j in queue.claim("c1", queues=["mail"], limit=5)] == [mail.id]
    assert queue.claim("c1", queues=["mail"]) == []
    claimed = queue.claim("c1", queues=["images", "other"], limit=5)
    assert [j.id for j in claimed] == [image.id, other.id]


def test_claim_from_one_queue_name_as_text(queue: Queue) -> None:
    job = queue.enqueue("m", queue="mail")
    queue.enqueue("d")
    assert [j.id for j in queue.claim("c1", queues="mail", limit=5)] == [job.id]  # type: ignore[arg-type]


def test_queues_none_claims_from_every_queue_in_priority_order(
    queue: Queue,
) -> None:
    a = queue.enqueue("a", queue="q1")
    b = queue.enqueue("b", queue="q2", priority=3)
    c = queue.enqueue("c", queue="q3")
    d = queue.enqueue("d")
    assert [j.id for j in queue.claim("c1", limit=10)] == [b.id, a.id, c.id, d.id]


@pytest.mark.parametrize(
    "options",
    [
        {"limit": -1},
        {"limit": 1.5},
        {"limit": True},
        {"limit": 10**9},
        {"queues": []},
        {"queues": ["bad name"]},
        {"lease_seconds": 0},
        {"lease_seconds": -5},
        {"lease_seconds": float("nan")},
    ],
)
def test_invalid_claim_changes_nothing(queue: Queue, options: dict) -> None:
    queue.enqueue("a")
    before = snapshot(queue)
    with pytest.raises(InvalidArgument):
        queue.claim("c1", **options)
    assert snapshot(queue) == before


@pytest.mark.parametrize("consumer", ["", "x" * 201])
def test_invalid_consumer_id(queue: Queue, consumer: str) -> None:
    queue.enqueue("a")
    with pytest.raises(InvalidArgument):
        queue.claim(consumer)
    assert queue.get(1).status is JobState.PENDING


def test_heartbeat_extends_the_lease(queue: Queue, clock: FakeClock) -> None:
    queue.enqueue("a")
    held = claim_one(queue, lease_seconds=10)
    clock.advance(8)
    expiry = queue.heartbeat(held.id, token(held), lease_seconds=10)
    assert expiry == clock.now + 10
    assert queue.get(held.id).lease_expires_at == expiry
    clock.advance(8)  # past the first lease, inside the extended one
    assert queue.rescue_expired() == []
    assert queue.stats().stalled == 0
    assert queue.get(held.id).status is JobState.PROCESSING
    assert actions(queue, held.id) == ["enqueue", "claim"]  # heartbeats are not transitions


def test_lease_expires_without_heartbeat(queue: Queue, clock: FakeClock) -> None:
    queue.enqueue("a")
    held = claim_one(queue, lease_seconds=10)
    clock.advance(10)
    assert queue.rescue_expired() == []  # expiring at this instant is not yet expired
    clock.advance(0.5)
    assert queue.stats().stalled == 1
    [rescued] = queue.rescue_expired()
    assert rescued.id == held.id and rescued.status is JobState.PENDING


def test_heartbeat_after_rescue_raises_lease_lost(queue: Queue, clock: FakeClock) -> None:
    queue.enqueue("a")
    held = claim_one(queue, lease_seconds=5)
    clock.advance(6)
    queue.rescue_expired()
    with pytest.raises(LeaseLost):
        queue.heartbeat(held.id, token(held))
    assert queue.get(held.id).status is JobState.PENDING


def test_heartbeat_with_wrong_token_or_job(queue: Queue) -> None:
    queue.enqueue("a")
    held = claim_one(queue)
    before = snapshot(queue)
    with pytest.raises(LeaseLost):
        queue.heartbeat(held.id, "not-the-token")
    with pytest.raises(JobNotFound):
        queue.heartbeat(held.id + 100, token(held))
    assert snapshot(queue) == before


def test_zombie_complete_is_fenced(queue: Queue, clock: FakeClock) -> None:
    job = queue.enqueue("a")
    zombie = claim_one(queue, "A", lease_seconds=5)
    clock.advance(6)  # A stalls past its lease
    [rescued] = queue.rescue_expired()
    assert rescued.id == job.id
    fresh = claim_one(queue, "B")
    assert fresh.id == job.id and token(fresh) != token(zombie) and fresh.attempts == 2
    with pytest.raises(LeaseLost):
        queue.complete(job.id, token(zombie))
    with pytest.raises(LeaseLost):
        queue.fail(job.id, token(zombie), "late failure")
    with pytest.raises(LeaseLost):
        queue.release(job.id, token(zombie))
    with pytest.raises(LeaseLost):
        queue.heartbeat(job.id, token(zombie))
    assert queue.get(job.id).consumer_id == "B"
    done = queue.complete(job.id, token(fresh))
    assert done.status is JobState.DONE
    with pytest.raises(LeaseLost):  # neither a late zombie nor a duplicate report lands
        queue.complete(job.id, token(zombie))
    with pytest.raises(LeaseLost):
        queue.complete(job.id, token(fresh))
    events = queue.history(job.id)
    assert [e.action for e in events] == ["enqueue", "claim", "rescue", "claim", "complete"]
    assert [e.actor for e in events if e.action == "complete"] == ["B"]
    assert sum(e.to_status is JobState.DONE for e in events) == 1


def test_wait_for_jobs(queue: Queue, clock: FakeClock) -> None:
    assert queue.wait_for_jobs(0) is False
    queue.enqueue("later", queue="mail", delay=30)
    assert queue.wait_for_jobs(0.1) is False  # not runnable yet
    clock.advance(30)
    assert queue.wait_for_jobs(0) is True
    assert queue.wait_for_jobs(0, queues=["mail"]) is True
    assert queue.wait_for_jobs(0, queues=["other"]) is False
