"""Reading the queue: history, stats, listing with keyset pagination, counting."""

from __future__ import annotations

import pytest

from pqcore import (
    InvalidArgument,
    JobFilter,
    JobNotFound,
    JobState,
    Queue,
)
from tests.backends import FakeClock, QueueMaker
from tests.conformance.helpers import claim_one, token

STATES = ["pending", "processing", "done", "failed", "permanently_failed", "cancelled"]


def test_history_records_every_transition_of_a_long_life(
    make_queue: QueueMaker, clock: FakeClock
) -> None:
    queue = make_queue(clock=clock, backoff_base_seconds=1, backoff_cap_seconds=1)
    job = queue.enqueue("life", max_attempts=3, actor="prod-1")
    steps = []

    def step(seconds: float = 1) -> float:
        clock.advance(seconds)
        steps.append(clock.now)
        return clock.now

    step()
    held = claim_one(queue, "w1", lease_seconds=5)  # attempt 1
    step()
    queue.release(held.id, token(held), reason="sigterm")  # attempt given back: 0
    step()
    held = claim_one(queue, "w2", lease_seconds=5)  # attempt 1
    step()
    queue.fail(held.id, token(held), "flaky")
    step(2)
    queue.schedule_retries()
    step()
    held = claim_one(queue, "w3", lease_seconds=5)  # attempt 2
    step(6)
    queue.rescue_expired()
    step()
    held = claim_one(queue, "w4", lease_seconds=5)  # attempt 3 of 3
    step()
    queue.fail(held.id, token(held), "gave up")
    step()
    queue.resubmit(job.id, actor="alice", reason="fixed")
    step()
    queue.cancel(job.id, actor="bob")
    step()
    queue.resubmit(job.id, actor="alice")
    step()
    queue.mark_failed(job.id, actor="carol", reason="bad data")
    step()
    queue.mark_done(job.id, actor="dave")
    expected = [
        (None, P, "enqueue", "prod-1", 0),
        (P, R, "claim", "w1", 1),
        (R, P, "release", "w1", 0),
        (P, R, "claim", "w2", 1),
        (R, F, "fail", "w2", 1),
        (F, P, "schedule_retry", "manager", 1),
        (P, R, "claim", "w3", 2),
        (R, P, "rescue", "manager", 2),
        (P, R, "claim", "w4", 3),
        (R, X, "dead_letter", "w4", 3),
        (X, P, "resubmit", "alice", 0),
        (P, C, "cancel", "bob", 0),
        (C, P, "resubmit", "alice", 0),
        (P, X, "mark_failed", "carol", 0),
        (X, D, "mark_done", "dave", 0),
    ]
    events = queue.history(job.id)
    got = [
        (e.from_status and e.from_status.value, e.to_status.value, e.action, e.actor, e.attempt)
        for e in events
    ]
    assert got == expected
    assert [e.at for e in events] == [steps[0] - 1, *steps]
    assert all(e.job_id == job.id for e in events)
    assert [e.id for e in events] == sorted(e.id for e in events)
    details = {e.action: e.detail for e in events}
    assert details["release"] == "sigterm"
    assert "flaky" in (details["fail"] or "")
    assert details["mark_failed"] == "bad data"
    assert queue.doctor() == []


P, R, D, F, X, C = STATES[0], STATES[1], STATES[2], STATES[3], STATES[4], STATES[5]


def test_history_of_unknown_job(queue: Queue) -> None:
    with pytest.raises(JobNotFound):
        queue.history(12345)
    with pytest.raises(JobNotFound):
        queue.get(12345)
    with pytest.raises(InvalidArgument):
        queue.get(-1)


def test_stats_on_an_empty_queue(queue: Queue) -> None:
    stats = queue.stats()
    assert stats.counts == {state: 0 for state in STATES}
    assert (stats.oldest_pending_age, stats.stalled, stats.dead_letter, stats.total) == (
        None,
        0,
        0,
        0,
    )
    assert set(stats.to_dict()) >= {"counts", "oldest_pending_age", "stalled", "dead_letter"}


def test_stats_counts_every_state(queue: Queue, clock: FakeClock) -> None:
    queue.enqueue_many([f"j{i}" for i in range(9)])
    jobs = queue.claim("w", limit=6, lease_seconds=10)
    queue.complete(jobs[0].id, token(jobs[0]))
    queue.complete(jobs[1].id, token(jobs[1]))
    queue.fail(jobs[2].id, token(jobs[2]), "retry me")
    queue.fail(jobs[3].id, token(jobs[3]), "dead", retryable=False)
    pending_left = queue.list_jobs(JobFilter(statuses=(JobState.PENDING,))).jobs
    queue.cancel(pending_left[0].id, actor="op")
    stats = queue.stats()
    assert stats.counts == {P: 2, R: 2, D: 2, F: 1, X: 1, C: 1}
    assert stats.total == 9 and stats.dead_letter == 1 and stats.stalled == 0
    clock.advance(11)
    assert queue.stats().stalled == 2
    queue.heartbeat(jobs[4].id, token(jobs[4]))
    assert queue.stats().stalled == 1


def test_stats_oldest_pending_age_counts_runnable_jobs_only(queue: Queue, clock: FakeClock) -> None:
    queue.enqueue("later", delay=1000)
    assert queue.stats().oldest_pending_age is None  # nothing runnable is waiting
    clock.advance(5)
    queue.enqueue("now")
    clock.advance(7)
    assert queue.stats().oldest_pending_age == pytest.approx(7)
    queue.enqueue("older", run_at=clock.now - 30)
    assert queue.stats().oldest_pending_age == pytest.approx(30)


def test_stats_per_queue(queue: Queue, clock: FakeClock) -> None:
    queue.enqueue("a", queue="mail")
    clock.advance(10)
    queue.enqueue_many(["b", "c"])
    held = claim_one(queue, queues=["default"], lease_seconds=1)
    clock.advance(5)
    mail = queue.stats("mail")
    assert mail.counts == {P: 1, R: 0, D: 0, F: 0, X: 0, C: 0}
    assert mail.total == 1
    assert mail.oldest_pending_age == pytest.approx(15)
    assert mail.stalled == 0
    default = queue.stats("default")
    assert default.counts[P] == 1 and default.counts[R] == 1 and default.total == 2
    assert default.oldest_pending_age == pytest.approx(5)
    assert default.stalled == 1
    assert queue.stats("nothing").total == 0
    assert queue.stats("nothing").oldest_pending_age is None
    queue.complete(held.id, token(held))  # an expired, not rescued lease still completes
    with pytest.raises(InvalidArgument):
        queue.stats("bad name")


def test_list_jobs_newest_first_with_keyset_pagination(queue: Queue) -> None:
    ids = [j.id for j in queue.enqueue_many([f"j{i}" for i in range(23)])]
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = queue.list_jobs(limit=5, before_id=cursor)
        seen += [j.id for j in page.jobs]
        pages += 1
        if page.next_cursor is None:
            break
        assert page.next_cursor == page.jobs[-1].id
        # A job added between pages appears on a new first page, never inside this walk.
        queue.enqueue(f"late-{pages}")
        cursor = page.next_cursor
    assert seen == sorted(ids, reverse=True)  # no duplicates, no gaps
    assert pages == 5


def test_list_jobs_exact_page_boundary(queue: Queue) -> None:
    queue.enqueue_many([f"j{i}" for i in range(10)])
    first = queue.list_jobs(limit=10)
    assert len(first.jobs) == 10 and first.next_cursor is None
    second = queue.list_jobs(limit=5)
    assert second.next_cursor is not None
    third = queue.list_jobs(limit=5, before_id=second.next_cursor)
    assert len(third.jobs) == 5 and third.next_cursor is None


def test_list_jobs_filters(queue: Queue, clock: FakeClock) -> None:
    a = queue.enqueue("reports/2024-01.csv", queue="reports")
    clock.advance(10)
    b = queue.enqueue("images/cat_1.png", queue="images")
    c = queue.enqueue("images/cat%2.png", queue="images")
    held = claim_one(queue, queues=["images"])
    queue.fail(held.id, token(held), "decoder exploded", retryable=False)

    def ids(**kw: object) -> list[int]:
        return [j.id for j in queue.list_jobs(JobFilter(**kw)).jobs]  # type: ignore[arg-type]

    assert ids(queue="images") == [c.id, b.id]
    assert ids(statuses=(JobState.PENDING,)) == [c.id, a.id]
    assert ids(statuses=(JobState.PENDING, JobState.PERMANENTLY_FAILED)) == [c.id, b.id, a.id]
    assert ids(text="exploded") == [b.id]  # matches the error text
    assert ids(text="cat%") == [c.id]  # LIKE wildcards are literal
    assert ids(text="cat_") == [b.id]
    assert ids(created_before=a.created_at + 1) == [a.id]
    assert ids(created_after=a.created_at + 1) == [c.id, b.id]
    assert ids(queue="images", statuses=(JobState.PENDING,)) == [c.id]


def test_list_jobs_invalid_limits(queue: Queue) -> None:
    queue.enqueue("a")
    for limit in (-1, 0, 1001):
        with pytest.raises(InvalidArgument):
            queue.list_jobs(limit=limit)


def test_count_jobs(queue: Queue, clock: FakeClock) -> None:
    queue.enqueue_many(["a", "b", "c"])
    queue.enqueue("d", queue="other")
    clock.advance(5)
    queue.enqueue("e-text")
    held = claim_one(queue)
    queue.complete(held.id, token(held))
    assert queue.count_jobs() == 5
    assert queue.count_jobs(JobFilter(statuses=(JobState.PENDING,))) == 4
    assert queue.count_jobs(JobFilter(statuses=(JobState.DONE, JobState.PENDING))) == 5
    assert queue.count_jobs(JobFilter(queue="other")) == 1
    assert queue.count_jobs(JobFilter(text="-text")) == 1
    assert queue.count_jobs(JobFilter(created_after=clock.now - 1)) == 1
    assert queue.count_jobs(JobFilter(statuses=(JobState.FAILED,))) == 0
