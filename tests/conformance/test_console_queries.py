"""The read queries the consoles chart and page with: sorting, time buckets, samples."""

from __future__ import annotations

import pytest

from pqcore import (
    InvalidArgument,
    JobChanged,
    JobCursor,
    JobFilter,
    JobOrder,
    JobState,
    Queue,
    QueueThroughput,
    SortedPage,
    Transition,
)
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


# ---------------------------------------------------------------- sorted keyset pages


def _walk(queue: Queue, order: JobOrder, descending: bool, flt: JobFilter | None = None,
          limit: int = 3) -> tuple[list[int], list[SortedPage]]:  # fmt: skip
    pages = [queue.page_jobs(flt, order=order, descending=descending, limit=limit)]
    while pages[-1].next is not None:
        after = pages[-1].next
        pages.append(
            queue.page_jobs(flt, order=order, descending=descending, limit=limit, after=after)
        )
    return [j.id for p in pages for j in p.jobs], pages


@pytest.mark.parametrize("order", list(JobOrder))
@pytest.mark.parametrize("descending", [True, False])
def test_page_jobs_sorts_the_whole_table_and_pages_both_ways(
    queue: Queue, clock: FakeClock, order: JobOrder, descending: bool
) -> None:
    for n in range(8):  # priorities with ties, run times out of id order
        queue.enqueue(f"job {n}", priority=n % 3, delay=(7 - n) * 10.0)
        clock.advance(1)
    clock.advance(100)
    for _ in range(2):  # attempts and updates differ too
        [job] = queue.claim("c1", lease_seconds=5)
        clock.advance(1)
        queue.fail(job.id, job.lease_token or "", "TimeoutError: slow")
    jobs = queue.list_jobs(limit=100).jobs
    column = {"created": "id"}.get(order.value, order.value)
    expected = [j.id for j in sorted(jobs, key=lambda j: (getattr(j, column), j.id),
                                     reverse=descending)]  # fmt: skip
    seen, pages = _walk(queue, order, descending)
    assert seen == expected and [len(p.jobs) for p in pages] == [3, 3, 2]
    assert pages[0].previous is None and pages[1].previous is not None
    # Previous from the last page gives the middle page again, then the first.
    back = queue.page_jobs(order=order, descending=descending, limit=3, before=pages[2].previous)
    assert [j.id for j in back.jobs] == [j.id for j in pages[1].jobs] and back.next is not None
    first = queue.page_jobs(order=order, descending=descending, limit=3, before=back.previous)
    assert [j.id for j in first.jobs] == expected[:3] and first.previous is None
    # A cursor survives its URL form.
    assert JobCursor.decode(pages[1].next.encode()) == pages[1].next  # type: ignore[union-attr]


@pytest.mark.parametrize("order", [JobOrder.PRIORITY, JobOrder.UPDATED_AT, JobOrder.ATTEMPTS])
@pytest.mark.parametrize(
    "statuses",
    [(), (JobState.PENDING,), (JobState.DONE,), (JobState.PENDING, JobState.DONE)],
    ids=["every", "pending", "done", "pending+done"],
)
def test_page_jobs_merges_pending_jobs_with_the_rest_in_order(
    queue: Queue, clock: FakeClock, order: JobOrder, statuses: tuple[JobState, ...]
) -> None:
    """Pending jobs are outside three of the sort indexes and sorted apart: pages in
    both directions still interleave them with the rest, ties (equal values on both
    sides of the split) included."""
    for n in range(12):
        queue.enqueue(f"job {n}", priority=n % 2)
    for _ in range(5):
        clock.advance(1)
        _run(queue, clock, "done")
    [held] = queue.claim("c1")  # processing: neither pending nor in the filter's done
    clock.advance(1)
    queue.release(held.id, held.lease_token or "")  # back to pending, attempts 1
    flt = JobFilter(statuses) if statuses else None
    everything = queue.list_jobs(flt, limit=100).jobs
    column = order.value
    for descending in (True, False):
        expected = [j.id for j in sorted(everything, key=lambda j: (getattr(j, column), j.id),
                                         reverse=descending)]  # fmt: skip
        seen, pages = _walk(queue, order, descending, flt, limit=2)
        assert seen == expected
        if len(pages) > 2:
            back = queue.page_jobs(
                flt, order=order, descending=descending, limit=2, before=pages[2].previous
            )
            assert [j.id for j in back.jobs] == [j.id for j in pages[1].jobs]


def test_page_jobs_filters_and_rejects_bad_cursors(queue: Queue) -> None:
    for n in range(5):
        queue.enqueue(f"job {n}", queue="a" if n % 2 else "b", priority=n)
    seen, _ = _walk(queue, JobOrder.PRIORITY, True, JobFilter(queue="b"), limit=2)
    assert [queue.get(i).priority for i in seen] == [4, 2, 0]
    assert queue.page_jobs(JobFilter(queue="none")) == SortedPage([], None, None)
    [held] = queue.claim("c1")  # priority 4; pending holds most jobs, processing few
    by_priority = JobOrder.PRIORITY
    small = queue.page_jobs(JobFilter((JobState.PROCESSING,)), order=by_priority)
    assert [j.id for j in small.jobs] == [held.id]
    large = queue.page_jobs(JobFilter((JobState.PENDING,)), order=by_priority, limit=2)
    assert [j.priority for j in large.jobs] == [3, 2]
    rest = queue.page_jobs(JobFilter((JobState.PENDING,)), order=by_priority, after=large.next)
    assert [j.priority for j in rest.jobs] == [1, 0]
    with pytest.raises(InvalidArgument):
        JobCursor.decode("not-a-cursor")
    with pytest.raises(InvalidArgument):
        queue.page_jobs(after=JobCursor(1, 1), before=JobCursor(1, 1))


# ---------------------------------------------------------------- failure groups


def test_failure_groups_merge_errors_differing_in_paths_and_numbers(
    queue: Queue, clock: FakeClock
) -> None:
    errors = [f"PermanentError: job file /data/jobs/{n:04d}.txt does not exist" for n in range(4)]
    errors += ["TimeoutError: no answer within 30s", "TimeoutError: no answer within 45s"]
    errors += ["Traceback (most recent call last):\n  File \"w.py\", line 9\nKeyError: 'id'\n"]
    for n, _ in enumerate(errors):
        queue.enqueue(f"job {n}", max_attempts=1 if n < 4 else 3)
    for error in errors:
        [job] = queue.claim("c1")
        queue.fail(job.id, job.lease_token or "", error, retryable=not error.startswith("Perm"))
    queue.enqueue("fine")
    _run(queue, clock, "done")
    groups = queue.failure_groups()
    assert [(g.pattern, g.exception, g.jobs, g.dead) for g in groups] == [
        ("PermanentError: job file <path> does not exist", "PermanentError", 4, 4),
        ("TimeoutError: no answer within <n>s", "TimeoutError", 2, 0),
        ("KeyError: <str>", "KeyError", 1, 0),
    ]
    assert groups[0].example == errors[3]  # the newest of the group
    assert [g.jobs for g in queue.failure_groups(limit=1)] == [4]


def test_a_failure_group_is_a_filter_for_listing_counting_and_acting(queue: Queue) -> None:
    errors = ["PermanentError: job file /a/1.txt does not exist",
              "PermanentError: job file /b/22.txt does not exist",
              "PermanentError: job file /c/3.txt does not exist (and more)",
              "Traceback (most recent call last):\n  x\nPermanentError: job file /d does not"
              " exist\n",
              "ValueError: 50%_off is not a price"]  # fmt: skip
    for n, error in enumerate(errors):
        queue.enqueue(f"job {n}", max_attempts=1)
        [job] = queue.claim("c1")
        queue.fail(job.id, job.lease_token or "", error, retryable=False)
    [group] = [g for g in queue.failure_groups() if g.exception == "PermanentError" and g.jobs > 1]
    flt = JobFilter(statuses=(JobState.PERMANENTLY_FAILED,), error_group=group.pattern)
    assert sorted(j.id for j in queue.list_jobs(flt).jobs) == [1, 2, 4]
    assert queue.count_jobs(flt) == 3 == group.jobs
    [percent] = [g for g in queue.failure_groups() if g.exception == "ValueError"]
    assert percent.pattern == "ValueError: <n>%_off is not a price"  # LIKE characters literal
    assert [j.id for j in queue.list_jobs(JobFilter(error_group=percent.pattern)).jobs] == [5]
    applied, skipped = queue.bulk_action(Transition.RESUBMIT, flt, actor="alice", reason="fixed")
    assert (applied, skipped) == (3, 0)
    assert {queue.get(i).status for i in (1, 2, 4)} == {JobState.PENDING}
    assert queue.get(3).status is JobState.PERMANENTLY_FAILED
    assert queue.history(1)[-1].actor == "alice"


def test_queue_throughput_counts_each_queues_transitions(queue: Queue, clock: FakeClock) -> None:
    since = clock.now
    for name in ("a", "a", "b"):
        queue.enqueue(f"job in {name}", queue=name)
    [job] = queue.claim("c1", queues=["a"])
    queue.complete(job.id, job.lease_token or "")
    [job] = queue.claim("c1", queues=["b"])
    queue.fail(job.id, job.lease_token or "", "boom")
    assert queue.queue_throughput(since) == {
        "a": QueueThroughput("a", 2, 1, 0),
        "b": QueueThroughput("b", 1, 0, 1),
    }
    clock.advance(10)
    assert queue.queue_throughput(clock.now) == {}


# ---------------------------------------------------------------- acting on what was seen


def test_an_action_on_a_job_that_changed_since_it_was_seen_is_refused(
    queue: Queue, clock: FakeClock
) -> None:
    job = queue.enqueue("x")
    seen = queue.history(job.id)[-1].id
    clock.advance(5)
    queue.cancel(job.id, actor="carol")
    with pytest.raises(JobChanged) as raised:
        queue.operator_action(Transition.RESUBMIT, job.id, actor="alice", seen_event=seen)
    error = raised.value
    assert (error.changed_action, error.changed_by, error.changed_at) == ("cancel", "carol",
                                                                         clock.now)  # fmt: skip
    assert str(error).startswith(f"job {job.id} was cancelled by carol at ")
    assert queue.get(job.id).status is JobState.CANCELLED
    assert [e.actor for e in queue.history(job.id)] == ["producer", "carol"]
    # Seen as it is now: applied.
    seen = queue.history(job.id)[-1].id
    moved = queue.operator_action(Transition.RESUBMIT, job.id, actor="alice", seen_event=seen)
    assert moved.status is JobState.PENDING and queue.history(job.id)[-1].actor == "alice"
