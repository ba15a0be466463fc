"""The read queries the consoles chart and page with: sorting, time buckets, samples."""

from __future__ import annotations

import pytest

from pqcore import InvalidArgument, JobFilter, JobState, Queue
from tests.backends import FakeClock


def _run(queue: Queue, clock: FakeClock, outcome: str, error: str = "") -> int:
    [job] = queue.claim("c1")
    token = job.lease_token or ""
    clock.advance(2.5)
    if outcome == "done":
        queue.complete(job.id, token)
    else:
        queue.fail(job.id, token, error, retryable=outcome == "retry")
    return job.id


def test_list_jobs_oldest_first_pages_by_after_id(queue: Queue) -> None:
    ids = [queue.enqueue(f"job {n}").id for n in range(7)]
    first = queue.list_jobs(limit=3, oldest_first=True)
    assert [j.id for j in first.jobs] == ids[:3] and first.next_cursor == ids[2]
    second = queue.list_jobs(limit=3, oldest_first=True, after_id=first.next_cursor)
    assert [j.id for j in second.jobs] == ids[3:6]
    last = queue.list_jobs(limit=3, oldest_first=True, after_id=second.next_cursor)
    assert [j.id for j in last.jobs] == ids[6:] and last.next_cursor is None
    newest = queue.list_jobs(limit=3)
    assert [j.id for j in newest.jobs] == ids[::-1][:3]


def test_list_jobs_filters_by_creation_time(queue: Queue, clock: FakeClock) -> None:
    early = queue.enqueue("early")
    clock.advance(3600)
    late = queue.enqueue("late")
    recent = JobFilter(created_after=clock.now - 60)
    assert [j.id for j in queue.list_jobs(recent).jobs] == [late.id]
    old = JobFilter(created_before=clock.now - 60)
    assert [j.id for j in queue.list_jobs(old, oldest_first=True).jobs] == [early.id]
    assert queue.count_jobs(recent) == 1


def test_throughput_buckets_enqueued_completed_failed(queue: Queue, clock: FakeClock) -> None:
    start = clock.now - clock.now % 60
    clock.now = start + 1
    for n in range(3):
        queue.enqueue(f"job {n}")
    _run(queue, clock, "done")
    clock.now = start + 61
    _run(queue, clock, "dead", "ValueError: bad")
    _run(queue, clock, "retry", "TimeoutError")
    buckets = queue.throughput(start)
    assert [(b.start, b.enqueued, b.completed, b.failed) for b in buckets] == [
        (start, 3, 1, 0),
        (start + 60, 0, 0, 2),
    ]
    assert queue.throughput(start + 60)[0].failed == 2
    assert queue.throughput(clock.now + 60) == []
    with pytest.raises(InvalidArgument):
        queue.throughput(start, bucket_seconds=0)


def test_failure_reasons_ranked_from_failed_and_dead_jobs(queue: Queue, clock: FakeClock) -> None:
    for n in range(5):
        queue.enqueue(f"job {n}")
    _run(queue, clock, "dead", "TimeoutError: slow")
    _run(queue, clock, "retry", "TimeoutError: slow")
    _run(queue, clock, "dead", "ValueError: " + "x" * 300)
    _run(queue, clock, "done")
    reasons = queue.failure_reasons()
    assert reasons[0] == ("TimeoutError: slow", 2)
    assert reasons[1][1] == 1 and len(reasons[1][0]) == 160
    assert queue.failure_reasons(limit=1) == [("TimeoutError: slow", 2)]


def test_attempts_histogram_counts_tried_jobs(queue: Queue, clock: FakeClock) -> None:
    for n in range(2):
        queue.enqueue(f"job {n}", max_attempts=3)
    first = _run(queue, clock, "retry", "boom")
    _run(queue, clock, "done")
    clock.advance(3600)
    queue.schedule_retries()
    [again] = queue.claim("c1")
    assert again.id == first
    queue.complete(again.id, again.lease_token or "")
    queue.enqueue("never claimed")
    # the third job was never claimed: not in the histogram
    assert queue.attempts_histogram() == {1: 1, 2: 1}
    assert sum(queue.attempts_histogram(sample=1).values()) == 1


def test_processing_seconds_of_done_jobs(queue: Queue, clock: FakeClock) -> None:
    queue.enqueue("a")
    queue.enqueue("b")
    _run(queue, clock, "done")
    _run(queue, clock, "dead", "no")
    job = queue.enqueue("marked")
    queue.mark_done(job.id, actor="tester")  # never started: no processing time
    assert queue.processing_seconds() == [2.5]
    with pytest.raises(InvalidArgument):
        queue.processing_seconds(sample=0)


def test_stalled_jobs_are_processing_jobs_with_an_expired_lease(
    queue: Queue, clock: FakeClock
) -> None:
    for n in range(3):
        queue.enqueue(f"job {n}")
    first, second = queue.claim("c1", lease_seconds=10), queue.claim("c2", lease_seconds=60)
    queue.claim("c3", lease_seconds=600)
    assert queue.stalled_jobs() == []
    clock.advance(61)
    stalled = queue.stalled_jobs()
    assert [j.id for j in stalled] == [first[0].id, second[0].id]  # longest expired first
    assert len(queue.stalled_jobs(limit=1)) == 1 == queue.stats().stalled - 1
    queue.rescue_expired()
    assert queue.stalled_jobs() == []


def test_queue_names_lists_queues_holding_jobs(queue: Queue) -> None:
    assert queue.queue_names() == []
    queue.enqueue("x", queue="reports")
    queue.enqueue("y", queue="emails")
    assert queue.queue_names() == ["emails", "reports"]
    assert queue.get(1).status is JobState.PENDING
