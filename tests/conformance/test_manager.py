"""The manager's maintenance: rescuing expired and stalled leases, purging, the consumer
registry and leadership."""

from __future__ import annotations

import pytest

from pqcore import InvalidArgument, JobNotFound, JobState, LeaseLost, Queue
from tests.backends import FakeClock
from tests.conformance.helpers import claim_one, token


def test_rescue_expired_returns_jobs_to_pending(queue: Queue, clock: FakeClock) -> None:
    job = queue.enqueue("a")
    other = queue.enqueue("b")
    held = claim_one(queue, "w1", lease_seconds=5)
    kept = claim_one(queue, "w2", lease_seconds=60)
    assert kept.id == other.id
    clock.advance(6)
    [rescued] = queue.rescue_expired()
    assert rescued.id == job.id
    assert rescued.status is JobState.PENDING and rescued.lease_token is None
    assert rescued.attempts == 1  # the stalled attempt still counts
    assert rescued.run_at == clock.now
    assert queue.get(other.id).status is JobState.PROCESSING
    last = queue.history(job.id)[-1]
    assert (last.from_status, last.to_status, last.action, last.actor, last.attempt) == (
        JobState.PROCESSING,
        JobState.PENDING,
        "rescue",
        "manager",
        1,
    )
    assert last.detail is not None and "w1" in last.detail
    assert queue.rescue_expired() == []
    assert claim_one(queue, "w3").id == held.id


def test_rescue_expired_dead_letters_out_of_attempts(queue: Queue, clock: FakeClock) -> None:
    job = queue.enqueue("poison", max_attempts=1)
    claim_one(queue, lease_seconds=5)
    clock.advance(6)
    [moved] = queue.rescue_expired()
    assert moved.id == job.id and moved.status is JobState.PERMANENTLY_FAILED
    assert moved.error is not None and "attempts" in moved.error
    last = queue.history(job.id)[-1]
    assert (last.action, last.actor, last.to_status) == (
        "dead_letter",
        "manager",
        JobState.PERMANENTLY_FAILED,
    )


def test_rescue_expired_respects_limit(queue: Queue, clock: FakeClock) -> None:
    queue.enqueue_many([f"j{i}" for i in range(5)])
    queue.claim("w", limit=5, lease_seconds=1)
    clock.advance(2)
    assert len(queue.rescue_expired(limit=2)) == 2
    assert len(queue.rescue_expired(limit=10)) == 3
    with pytest.raises(InvalidArgument):
        queue.rescue_expired(limit=-1)


def test_rescue_stalled_takes_back_long_running_jobs_even_with_heartbeats(
    queue: Queue, clock: FakeClock
) -> None:
    slow = queue.enqueue("slow")
    queue.enqueue("fresh")
    held = claim_one(queue, "w1", lease_seconds=10)
    for _ in range(10):  # heartbeating all along: never expired
        clock.advance(9)
        queue.heartbeat(held.id, token(held), lease_seconds=10)
    fresh = claim_one(queue, "w2")
    assert queue.rescue_expired() == []
    with pytest.raises(InvalidArgument):
        queue.rescue_stalled(0)
    [rescued] = queue.rescue_stalled(60)
    assert rescued.id == slow.id and rescued.status is JobState.PENDING
    assert queue.get(fresh.id).status is JobState.PROCESSING
    assert queue.history(slow.id)[-1].action == "rescue"
    with pytest.raises(LeaseLost):
        queue.complete(held.id, token(held))


def test_purge_done_removes_old_done_jobs_and_their_history(queue: Queue, clock: FakeClock) -> None:
    old, recent, pending = queue.enqueue_many(["old", "recent", "pending"])
    first = claim_one(queue)
    queue.complete(first.id, token(first))
    failed = queue.enqueue("dead")
    clock.advance(100)
    second = claim_one(queue)
    assert second.id == recent.id
    queue.complete(second.id, token(second))
    held = claim_one(queue)
    assert held.id == pending.id
    queue.fail(held.id, token(held), "x", retryable=False)
    clock.advance(10)
    assert queue.purge_done(50) == 1
    with pytest.raises(JobNotFound):
        queue.get(old.id)
    with pytest.raises(JobNotFound):
        queue.history(old.id)
    assert queue.get(recent.id).status is JobState.DONE
    assert queue.get(pending.id).status is JobState.PERMANENTLY_FAILED  # only done is purged
    assert queue.get(failed.id).status is JobState.PENDING
    assert queue.stats().counts["done"] == 1
    assert queue.purge_done(0) == 1
    assert queue.stats().counts["done"] == 0
    new = queue.enqueue("after purge")
    assert new.id > failed.id  # ids of purged jobs are not reused
    with pytest.raises(InvalidArgument):
        queue.purge_done(-1)


def test_consumer_registry(queue: Queue, clock: FakeClock) -> None:
    assert queue.consumers() == []
    queue.consumer_register("host-1-aaaa", host="host", pid=11, queues="default")
    queue.consumer_register("host-2-bbbb", host="host", pid=12, queues="mail,images")
    [first, second] = sorted(queue.consumers(), key=lambda c: c.id)
    assert (first.id, first.host, first.pid, first.queues, first.state) == (
        "host-1-aaaa",
        "host",
        11,
        "default",
        "idle",
    )
    assert first.started_at == first.last_heartbeat == clock.now
    assert (first.current_job_id, first.jobs_done, first.jobs_failed) == (None, 0, 0)
    assert second.queues == "mail,images"

    clock.advance(5)
    assert queue.consumer_heartbeat(
        "host-1-aaaa", state="busy", current_job_id=7, jobs_done=3, jobs_failed=1
    )
    busy = next(c for c in queue.consumers() if c.id == "host-1-aaaa")
    assert (busy.state, busy.current_job_id, busy.jobs_done, busy.jobs_failed) == (
        "busy",
        7,
        3,
        1,
    )
    assert busy.last_heartbeat == clock.now
    assert not queue.consumer_heartbeat(
        "unknown", state="idle", current_job_id=None, jobs_done=0, jobs_failed=0
    )
    with pytest.raises(InvalidArgument):
        queue.consumer_heartbeat(
            "host-1-aaaa", state="dead", current_job_id=None, jobs_done=0, jobs_failed=0
        )

    clock.advance(30)  # host-2 last heard 35s ago, host-1 30s ago
    assert queue.consumers_mark_dead(32) == ["host-2-bbbb"]
    assert queue.consumers_mark_dead(32) == []  # already dead
    queue.consumer_deregister("host-1-aaaa")
    states = {c.id: c.state for c in queue.consumers()}
    assert states == {"host-1-aaaa": "stopped", "host-2-bbbb": "dead"}
    stopped = next(c for c in queue.consumers() if c.id == "host-1-aaaa")
    assert stopped.current_job_id is None and stopped.last_heartbeat == clock.now

    assert queue.consumers_purge(10) == 1  # the dead one, silent for 35s
    assert [c.id for c in queue.consumers()] == ["host-1-aaaa"]
    clock.advance(11)
    assert queue.consumers_purge(10) == 1
    assert queue.consumers() == []


def test_consumer_register_again_resets_the_row(queue: Queue, clock: FakeClock) -> None:
    queue.consumer_register("c", host="h", pid=1, queues="default")
    queue.consumer_heartbeat("c", state="busy", current_job_id=3, jobs_done=9, jobs_failed=2)
    clock.advance(100)
    queue.consumers_mark_dead(10)
    queue.consumer_register("c", host="h2", pid=2, queues="q")
    [again] = queue.consumers()
    assert (again.host, again.pid, again.state, again.jobs_done, again.started_at) == (
        "h2",
        2,
        "idle",
        0,
        clock.now,
    )


def test_live_consumers_are_not_purged(queue: Queue, clock: FakeClock) -> None:
    queue.consumer_register("c", host="h", pid=1, queues="default")
    clock.advance(1000)
    assert queue.consumers_purge(10) == 0  # idle, not yet marked dead
    assert len(queue.consumers()) == 1


def test_leadership_is_exclusive_and_renewable(queue: Queue, clock: FakeClock) -> None:
    assert queue.leader("manager") is None
    assert queue.leader_attempt_elect("manager", "m1", 10)
    assert queue.leader("manager") == ("m1", clock.now + 10)
    assert not queue.leader_attempt_elect("manager", "m2", 10)
    assert queue.leader("manager") == ("m1", clock.now + 10)
    clock.advance(8)
    assert queue.leader_attempt_elect("manager", "m1", 10)  # renew
    assert queue.leader("manager") == ("m1", clock.now + 10)
    clock.advance(8)  # past the first term, inside the renewed one
    assert not queue.leader_attempt_elect("manager", "m2", 10)
    # Another name is another leadership.
    assert queue.leader_attempt_elect("cleaner", "m2", 10)
    assert queue.leader("cleaner") == ("m2", clock.now + 10)


def test_leadership_expires_and_is_taken_over(queue: Queue, clock: FakeClock) -> None:
    assert queue.leader_attempt_elect("manager", "m1", 10)
    clock.advance(10.5)
    assert queue.leader("manager") is None
    assert queue.leader_attempt_elect("manager", "m2", 10)
    assert queue.leader("manager") == ("m2", clock.now + 10)
    assert not queue.leader_attempt_elect("manager", "m1", 10)  # the old leader lost it


def test_leader_resign(queue: Queue, clock: FakeClock) -> None:
    assert queue.leader_attempt_elect("manager", "m1", 60)
    queue.leader_resign("manager", "m2")  # not the holder: no effect
    assert queue.leader("manager") == ("m1", clock.now + 60)
    queue.leader_resign("manager", "m1")
    assert queue.leader("manager") is None
    assert queue.leader_attempt_elect("manager", "m2", 60)
