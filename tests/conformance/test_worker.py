"""The consumer-side batching helper keeps the queue's guarantees: every job handed out
once, every outcome written (within the ack delay, even while the caller is busy),
claimed-but-unstarted jobs given back on close, stale leases never handed out."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import pytest

from pqcore import InvalidArgument, JobState, Outcome, OutcomeKind, Queue
from pqcore.worker import DEFAULT_BATCH, Worker
from tests.backends import FakeClock, QueueMaker


def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_two_workers_complete_every_job_exactly_once(make_queue: QueueMaker) -> None:
    first, second = make_queue(), make_queue()
    first.enqueue_many([f"j{i}" for i in range(120)])
    seen: list[int] = []
    with Worker(first, "w1", batch=7) as w1, Worker(second, "w2", batch=5) as w2:
        for _ in range(500):
            progressed = False
            for worker in (w1, w2):
                job = worker.next()
                if job is not None:
                    seen.append(job.id)
                    worker.done(job)
                    progressed = True
            if not progressed:
                break
    assert len(seen) == 120 and len(set(seen)) == 120
    stats = first.stats()
    assert stats.counts["done"] == 120 and stats.counts["processing"] == 0
    for job_id in seen[::17]:
        completions = [e for e in first.history(job_id) if e.action == "complete"]
        assert len(completions) == 1
    assert first.doctor() == []


def test_close_gives_back_claimed_jobs_never_handed_out(queue: Queue) -> None:
    jobs = queue.enqueue_many([f"j{i}" for i in range(10)])
    worker = Worker(queue, "w1", batch=8, prefetch_seconds=None)
    started = worker.next()
    assert started is not None and worker.buffered == 7
    worker.done(started)
    worker.close()
    assert queue.get(started.id).status is JobState.DONE
    for job in jobs:
        if job.id != started.id:
            after = queue.get(job.id)
            assert after.status is JobState.PENDING and after.attempts == 0
    assert queue.stats().counts["processing"] == 0
    released = [e for e in queue.history(jobs[1].id) if e.action == "release"]
    assert len(released) == 1 and released[0].detail == "worker stopped"
    with pytest.raises(InvalidArgument):
        worker.next()


def test_an_outcome_is_written_while_the_caller_works_on_the_next_job(
    queue: Queue,
) -> None:
    queue.enqueue_many(["a", "b"])
    with Worker(queue, "w1", batch=4, max_ack_delay=0.01) as worker:
        first = worker.next()
        assert first is not None
        worker.done(first)
        second = worker.next()  # handed out from the buffer: no commit on this path
        assert second is not None
        assert wait_until(lambda: queue.get(first.id).status is JobState.DONE)
        worker.done(second)
    assert queue.get(second.id).status is JobState.DONE


def test_only_the_first_outcome_waiting_wakes_the_flusher(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The flusher's deadline is the oldest waiting outcome's: later ones leave it where
    # it is. Waking it for each cost a busy consumer a thread hand-off a job.
    queue.enqueue_many([f"j{i}" for i in range(10)])
    with Worker(queue, "w1", batch=10, max_ack_delay=0.2) as worker:
        jobs = [worker.next() for _ in range(10)]
        wakes: list[int] = []
        notify_all = worker._lock.notify_all
        monkeypatch.setattr(worker._lock, "notify_all", lambda: (wakes.append(1), notify_all()))
        for job in jobs:
            assert job is not None
            worker.done(job)
        assert len(wakes) == 1
        assert wait_until(lambda: queue.stats().counts["done"] == 10)  # all written in time
    assert len(wakes) == 2  # and close() woke it to stop


def test_outcomes_ride_with_the_next_claim_without_waiting_for_the_ack_delay(
    queue: Queue,
) -> None:
    # The flusher would take an hour: only the claim can have written them.
    queue.enqueue_many(["a", "b", "c"])
    with Worker(queue, "w1", batch=2, max_ack_delay=3600) as worker:
        first, second = worker.next(), worker.next()
        assert first is not None and second is not None
        worker.done(first)
        worker.fail(second, "boom", retryable=False)
        third = worker.next()  # the buffer is empty: this claims, and settles the two
        assert third is not None and third.data == "c"
        assert queue.get(first.id).status is JobState.DONE
        assert queue.get(second.id).status is JobState.PERMANENTLY_FAILED
        worker.done(third)
    assert queue.get(third.id).status is JobState.DONE


def test_a_claim_that_came_back_short_is_followed_by_the_next_after_the_cooldown(
    queue: Queue,
) -> None:
    """A worker keeping up with its producers gathers the jobs of a cooldown in one
    claim instead of claiming each the moment it arrives."""
    queue.enqueue("first")
    with Worker(queue, "w1", batch=8, max_ack_delay=3600, claim_cooldown=0.3) as worker:
        first = worker.next()  # one of the eight it asked for: short
        assert first is not None
        claimed_at = time.monotonic()
        worker.done(first)
        queue.enqueue_many(["second", "third"])
        assert worker.next(timeout=0) is not None  # no time to wait: claimed at once
        assert worker.next() is not None  # from the buffer
        queue.enqueue_many(["fourth", "fifth"])
        waited_from = time.monotonic()
        fourth = worker.next(timeout=5)
        assert fourth is not None and fourth.data == "fourth"
        assert time.monotonic() - waited_from >= 0.25  # the cooldown of the last claim
        assert worker.buffered == 1  # both came in the one claim
    assert time.monotonic() - claimed_at < 60
    assert queue.get(first.id).status is JobState.DONE


def test_a_full_claim_or_a_wake_from_idle_claims_at_once(queue: Queue) -> None:
    queue.enqueue_many([f"j{i}" for i in range(6)])
    started = time.monotonic()
    with Worker(queue, "w1", batch=3, max_ack_delay=3600, claim_cooldown=30) as worker:
        for _ in range(6):  # two full claims: a backlog is never held back
            job = worker.next(timeout=60)
            assert job is not None
            worker.done(job)
        assert worker.next(timeout=0.2) is None  # the last claim found nothing: idle
        queue.enqueue("after a lull")
        job = worker.next(timeout=60)
        assert job is not None and job.data == "after a lull"
    assert time.monotonic() - started < 30  # no cooldown was slept


@pytest.mark.parametrize("cooldown", [-0.001, 0.06])
def test_the_claim_cooldown_is_checked(queue: Queue, cooldown: float) -> None:
    with pytest.raises(InvalidArgument, match="claim_cooldown"):
        Worker(queue, "w1", max_ack_delay=0.05, claim_cooldown=cooldown)


def test_the_flusher_starts_early_by_twice_its_recent_writes_at_most_half_the_delay(
    queue: Queue,
) -> None:
    worker = Worker(queue, "w1", max_ack_delay=0.05)
    assert worker._flush_lead() == 0.0  # nothing measured yet
    worker._write_seconds = 0.004
    assert worker._flush_lead() == pytest.approx(0.008)
    worker._write_seconds = 0.2  # a slow disk: still some time for outcomes to gather
    assert worker._flush_lead() == pytest.approx(0.025)
    worker._write_seconds = 0.0
    queue.enqueue("a")
    job = worker.next()
    assert job is not None
    worker.done(job)
    worker.close()
    assert worker._write_seconds > 0  # the real write of the outcome was measured


def test_a_buffered_job_with_an_aged_lease_is_given_back_and_claimed_afresh(
    queue: Queue, clock: FakeClock
) -> None:
    queue.enqueue_many(["a", "b", "c"])
    with Worker(queue, "w1", batch=3, lease_seconds=10, prefetch_seconds=None) as worker:
        first = worker.next()
        assert first is not None
        buffered = {"b", "c"}
        clock.advance(6)  # more than half the lease is gone for the buffered two
        worker.done(first)
        second = worker.next()
        assert second is not None and second.data in buffered
        assert second.attempts == 1  # the released attempt was given back, then counted
        assert second.lease_expires_at == pytest.approx(clock.now + 10)
        actions = [e.action for e in queue.history(second.id)]
        assert actions == ["enqueue", "claim", "release", "claim"]
        worker.done(second)
    assert queue.doctor() == []


def test_an_outcome_for_a_lost_lease_is_reported_not_applied(
    queue: Queue, clock: FakeClock
) -> None:
    queue.enqueue("a")
    with Worker(queue, "w1", lease_seconds=5) as worker:
        job = worker.next()
        assert job is not None
        clock.advance(6)
        queue.rescue_expired()
        worker.done(job)
        worker.flush()
        assert worker.lost == [job.id]
    assert queue.get(job.id).status is JobState.PENDING


def test_with_a_prefetch_window_long_jobs_are_claimed_one_at_a_time(queue: Queue) -> None:
    queue.enqueue_many([f"j{i}" for i in range(10)])
    # Jobs that take 20 ms each, a window of 1 ms: never more than the job in hand.
    with Worker(queue, "w1", batch=8, prefetch_seconds=0.001) as worker:
        for _ in range(4):
            job = worker.next()
            assert job is not None
            assert worker.buffered == 0
            assert queue.stats().counts["processing"] == 1  # nothing hoarded by this worker
            time.sleep(0.02)
            worker.done(job)
            worker.flush()


def test_with_a_prefetch_window_short_jobs_are_claimed_in_batches(queue: Queue) -> None:
    queue.enqueue_many([f"j{i}" for i in range(40)])
    with Worker(queue, "w1", batch=8, prefetch_seconds=60.0) as worker:
        first = worker.next()
        assert first is not None and worker.buffered == 0  # pace unknown: one at first
        worker.done(first)
        second = worker.next()
        assert second is not None
        worker.done(second)
        third = worker.next()  # two handouts gave a pace: the next claim fills the batch
        assert third is not None and worker.buffered == 7


def test_by_default_short_jobs_are_claimed_a_full_batch_at_a_time(queue: Queue) -> None:
    queue.enqueue_many([f"j{i}" for i in range(3 * DEFAULT_BATCH)])
    with Worker(queue, "w1") as worker:
        assert worker.batch == DEFAULT_BATCH
        for _ in range(2):  # pace unknown: one at a time until two handouts give it
            job = worker.next()
            assert job is not None and worker.buffered == 0
            worker.done(job)
        # The pace so far includes two claims' commits; handouts from the buffer take
        # microseconds, so once one claim's jobs are handed out the next claim is full
        # (a second's worth of such jobs is far more than a batch).
        most = 0
        while (job := worker.next()) is not None:
            most = max(most, worker.buffered)
            worker.done(job)
        assert most == DEFAULT_BATCH - 1


def test_by_default_long_jobs_are_claimed_only_a_second_ahead(queue: Queue) -> None:
    queue.enqueue_many([f"j{i}" for i in range(20)])
    with Worker(queue, "w1") as worker:
        for _ in range(5):
            job = worker.next()
            assert job is not None
            # Each job takes 0.25 s: a second holds four, the one in hand and three more.
            assert worker.buffered <= 3
            assert queue.stats().counts["processing"] <= 4
            time.sleep(0.25)
            worker.done(job)


def test_on_settled_hears_of_every_outcome_and_of_lost_leases(
    queue: Queue, clock: FakeClock
) -> None:
    queue.enqueue_many(["a", "b"])
    heard: list[tuple[int, bool]] = []
    with Worker(
        queue, "w1", batch=2, on_settled=lambda o, j: heard.append((o.job_id, j is not None))
    ) as worker:
        a, b = worker.next(), worker.next()
        assert a is not None and b is not None
        queue.mark_done(b.id, actor="carol")  # b's lease is taken away
        worker.done(a)
        worker.done(b)
        worker.flush()
    assert sorted(heard) == [(a.id, True), (b.id, False)]


def test_before_write_sees_each_outcome_before_it_is_written_and_may_change_it(
    queue: Queue,
) -> None:
    """A consumer makes its jobs' effects durable there: a done whose effect could not
    be made durable is written as a retryable failure, and on_settled hears of what was
    written. A hook that raises writes nothing; the outcomes are kept for the next try."""
    queue.enqueue_many(["kept", "refused"])
    seen: list[list[str]] = []
    heard: list[tuple[int, str]] = []
    broken = [True]

    def before_write(outcomes: list[Outcome]) -> list[Outcome]:
        seen.append([queue.get(o.job_id).status.value for o in outcomes])
        if broken[0]:
            broken[0] = False
            raise OSError("the disk went away")
        return [
            o if queue.get(o.job_id).data == "kept"
            else dataclasses.replace(o, kind=OutcomeKind.FAILED, error="not durable")
            for o in outcomes
        ]  # fmt: skip

    worker = Worker(
        queue, "w1", batch=2, max_ack_delay=60, before_write=before_write,
        on_settled=lambda o, j: heard.append((o.job_id, str(o.kind))),
    )  # fmt: skip
    kept, refused = worker.next(), worker.next()
    assert kept is not None and refused is not None
    worker.done(kept)
    worker.done(refused)
    with pytest.raises(OSError, match="the disk went away"):
        worker.flush()
    assert queue.get(kept.id).status is JobState.PROCESSING  # nothing was written
    worker.close()
    assert seen == [["processing", "processing"]] * 2  # called before each write
    assert queue.get(kept.id).status is JobState.DONE
    assert queue.get(refused.id).status is JobState.FAILED
    assert queue.get(refused.id).error == "not durable"
    assert sorted(heard) == [
        (kept.id, str(OutcomeKind.DONE)),
        (refused.id, str(OutcomeKind.FAILED)),
    ]
