"""Producers: enqueue and enqueue_many, their defaults, ordering, scheduling, dedupe and
validation (bad input raises before anything is written)."""

from __future__ import annotations

from typing import Any

import pytest

from pqcore import (
    EnqueueRequest,
    InvalidArgument,
    InvalidTransition,
    JobState,
    PayloadTooLarge,
    Queue,
)
from tests.backends import FakeClock, QueueMaker
from tests.conformance.helpers import claim_one, snapshot, token


def test_enqueue_defaults(queue: Queue, clock: FakeClock) -> None:
    job = queue.enqueue("jobs/0001.txt")
    assert job.id >= 1
    assert job.data == "jobs/0001.txt"
    assert job.queue == "default"
    assert job.status is JobState.PENDING
    assert job.priority == 0
    assert job.attempts == 0
    assert job.max_attempts == queue.settings.max_attempts
    assert job.run_at == clock.now
    assert job.created_at == job.updated_at == clock.now
    assert job.error is None and job.consumer_id is None
    assert job.lease_token is None and job.lease_expires_at is None
    assert job.dedupe_key is None
    assert job.started_at is None and job.finished_at is None
    assert queue.get(job.id) == job
    [event] = queue.history(job.id)
    assert (event.from_status, event.to_status, event.action) == (None, JobState.PENDING, "enqueue")
    assert event.actor == "producer" and event.attempt == 0 and event.at == clock.now


def test_enqueue_keeps_options(queue: Queue, clock: FakeClock) -> None:
    job = queue.enqueue(
        "x", queue="images", priority=7, delay=12.5, dedupe_key="k", max_attempts=3, actor="me"
    )
    assert (job.queue, job.priority, job.dedupe_key, job.max_attempts) == ("images", 7, "k", 3)
    assert job.run_at == clock.now + 12.5
    assert queue.history(job.id)[0].actor == "me"


def test_ids_grow(queue: Queue) -> None:
    ids = [queue.enqueue(f"j{i}").id for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_claim_order_is_priority_then_fifo(queue: Queue) -> None:
    low1 = queue.enqueue("low-1", priority=-1)
    mid1 = queue.enqueue("mid-1")
    high1 = queue.enqueue("high-1", priority=5)
    mid2 = queue.enqueue("mid-2")
    high2 = queue.enqueue("high-2", priority=5)
    order = [claim_one(queue).id for _ in range(5)]
    assert order == [high1.id, high2.id, mid1.id, mid2.id, low1.id]


def test_claim_of_several_returns_them_in_claim_order(queue: Queue) -> None:
    a = queue.enqueue("a")
    b = queue.enqueue("b", priority=1)
    c = queue.enqueue("c")
    assert [j.id for j in queue.claim("c1", limit=3)] == [b.id, a.id, c.id]


def test_delayed_job_is_not_claimable_early(queue: Queue, clock: FakeClock) -> None:
    later = queue.enqueue("later", delay=60)
    assert queue.claim("c1") == []
    clock.advance(59.9)
    assert queue.claim("c1") == []
    clock.advance(0.1)
    assert claim_one(queue).id == later.id


def test_run_at_is_not_claimable_early(queue: Queue, clock: FakeClock) -> None:
    job = queue.enqueue("at", run_at=clock.now + 100)
    assert job.run_at == clock.now + 100
    clock.advance(99)
    assert queue.claim("c1") == []
    clock.advance(1)
    assert claim_one(queue).id == job.id


def test_run_at_in_the_past_runs_before_newer_jobs(queue: Queue, clock: FakeClock) -> None:
    now_job = queue.enqueue("now")
    past = queue.enqueue("past", run_at=clock.now - 50)
    assert claim_one(queue).id == past.id
    assert claim_one(queue).id == now_job.id


def test_delayed_job_does_not_block_runnable_ones(queue: Queue, clock: FakeClock) -> None:
    queue.enqueue("urgent-but-later", priority=9, delay=30)
    runnable = queue.enqueue("now")
    assert claim_one(queue).id == runnable.id


def test_dedupe_key_returns_the_active_job(queue: Queue) -> None:
    first = queue.enqueue("a", dedupe_key="report-1")
    again = queue.enqueue("b", dedupe_key="report-1")
    assert again.id == first.id and again.data == "a"
    assert queue.count_jobs() == 1
    assert len(queue.history(first.id)) == 1  # the no-op wrote no history
    held = claim_one(queue)
    assert queue.enqueue("c", dedupe_key="report-1").id == first.id  # processing: still active
    queue.fail(held.id, token(held), "boom")
    assert queue.get(first.id).status is JobState.FAILED
    assert queue.enqueue("d", dedupe_key="report-1").id == first.id  # failed: still active


@pytest.mark.parametrize("final", ["done", "permanently_failed", "cancelled"])
def test_dedupe_key_is_reusable_once_the_job_is_final(queue: Queue, final: str) -> None:
    first = queue.enqueue("a", dedupe_key="k")
    if final == "cancelled":
        queue.cancel(first.id, actor="op")
    else:
        held = claim_one(queue)
        if final == "done":
            queue.complete(held.id, token(held))
        else:
            queue.fail(held.id, token(held), "bad input", retryable=False)
    assert queue.get(first.id).status.value == final
    second = queue.enqueue("b", dedupe_key="k")
    assert second.id != first.id and second.status is JobState.PENDING
    assert queue.enqueue("c", dedupe_key="k").id == second.id
    # Resubmitting the old job now would make two active jobs share the key.
    if final != "done":
        with pytest.raises(InvalidTransition, match="dedupe key"):
            queue.resubmit(first.id, actor="op")
        assert queue.get(first.id).status.value == final
        queue.cancel(second.id, actor="op")
        assert queue.resubmit(first.id, actor="op").status is JobState.PENDING


def test_dedupe_inside_one_batch(queue: Queue) -> None:
    jobs = queue.enqueue_many(
        [EnqueueRequest("a", dedupe_key="same"), EnqueueRequest("b", dedupe_key="same"), "c"]
    )
    assert jobs[0].id == jobs[1].id != jobs[2].id
    assert queue.count_jobs() == 2


def test_enqueue_many_returns_jobs_in_order(queue: Queue) -> None:
    jobs = queue.enqueue_many(["a", EnqueueRequest("b", queue="q2", priority=3), "c"])
    assert [j.data for j in jobs] == ["a", "b", "c"]
    assert jobs[1].queue == "q2" and jobs[1].priority == 3
    assert [j.id for j in jobs] == sorted(j.id for j in jobs)
    assert all(queue.get(j.id) == j for j in jobs)
    assert queue.enqueue_many([]) == []


def test_enqueue_many_accepts_an_iterator(queue: Queue) -> None:
    jobs = queue.enqueue_many(f"gen-{i}" for i in range(3))
    assert [j.data for j in jobs] == ["gen-0", "gen-1", "gen-2"]


BAD_ENQUEUES: list[tuple[str, dict[str, Any]]] = [
    ("empty payload", {"data": ""}),
    ("blank payload", {"data": "   \n"}),
    ("NUL in payload", {"data": "a\x00b"}),
    ("bytes payload", {"data": b"jobs/1"}),
    ("int payload", {"data": 17}),
    ("None payload", {"data": None}),
    ("lone surrogate", {"data": "bad \ud800"}),
    ("empty queue name", {"queue": ""}),
    ("queue name with space", {"queue": "a b"}),
    ("queue name with slash", {"queue": "../etc"}),
    ("queue name too long", {"queue": "q" * 65}),
    ("priority float", {"priority": 1.5}),
    ("priority bool", {"priority": True}),
    ("priority str", {"priority": "1"}),
    ("priority too high", {"priority": 10**9}),
    ("priority too low", {"priority": -(10**9)}),
    ("max_attempts zero", {"max_attempts": 0}),
    ("max_attempts negative", {"max_attempts": -1}),
    ("max_attempts float", {"max_attempts": 2.5}),
    ("max_attempts huge", {"max_attempts": 10**6}),
    ("delay negative", {"delay": -1}),
    ("delay nan", {"delay": float("nan")}),
    ("delay inf", {"delay": float("inf")}),
    ("delay str", {"delay": "5"}),
    ("run_at nan", {"run_at": float("nan")}),
    ("run_at str", {"run_at": "tomorrow"}),
    ("dedupe key empty", {"dedupe_key": ""}),
    ("dedupe key not text", {"dedupe_key": 5}),
    ("dedupe key too long", {"dedupe_key": "k" * 5000}),
]


@pytest.mark.parametrize(("why", "fields"), BAD_ENQUEUES, ids=[b[0] for b in BAD_ENQUEUES])
def test_invalid_enqueue_changes_nothing(queue: Queue, why: str, fields: dict[str, Any]) -> None:
    queue.enqueue("existing", dedupe_key="existing")
    before = snapshot(queue)
    request = {"data": "jobs/ok", **fields}
    with pytest.raises(InvalidArgument):
        queue.enqueue(**request)
    with pytest.raises(InvalidArgument):
        queue.enqueue_many(["first-ok", EnqueueRequest(**request), "last-ok"])
    assert snapshot(queue) == before, why


def test_oversized_payload(make_queue: QueueMaker, clock: FakeClock) -> None:
    queue = make_queue(clock=clock, max_payload_bytes=100)
    assert queue.enqueue("x" * 100).data == "x" * 100  # exactly at the limit is fine
    before = snapshot(queue)
    with pytest.raises(PayloadTooLarge):
        queue.enqueue("x" * 101)
    with pytest.raises(PayloadTooLarge):  # the limit counts UTF-8 bytes, not characters
        queue.enqueue("é" * 51)
    with pytest.raises(PayloadTooLarge):
        queue.enqueue_many(["ok", "y" * 101])
    assert snapshot(queue) == before
    assert queue.doctor() == []


def test_default_payload_limit_is_64_kib(queue: Queue) -> None:
    assert queue.enqueue("p" * 65536).id
    with pytest.raises(PayloadTooLarge):
        queue.enqueue("p" * 65537)


def test_payload_text_round_trips(queue: Queue) -> None:
    weird = "jobs/ünïcode ✓/line\nbreak\ttab 'quote\" ; DROP TABLE jobs; --"
    job = queue.enqueue(weird)
    assert queue.get(job.id).data == weird
    assert claim_one(queue).data == weird


def test_settings_max_attempts_is_the_default(make_queue: QueueMaker, clock: FakeClock) -> None:
    queue = make_queue(clock=clock, max_attempts=2)
    assert queue.enqueue("x").max_attempts == 2
    assert queue.enqueue("y", max_attempts=9).max_attempts == 9
    assert queue.doctor() == []
