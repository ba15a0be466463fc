"""Cancelling a running job (issue 12, feature 6): an operator's cancel of a processing
job takes the holder's lease away. The holder's next heartbeat raises ``JobCancelled``,
its complete/fail/release are refused and change nothing, the history names the
operator, and the batching ``Worker`` refuses buffered and late outcomes of the job
cleanly (reported through ``on_settled``, the worker carries on)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pqcore import JobCancelled, JobState, LeaseLost, Outcome, OutcomeKind, Queue, Transition
from pqcore.worker import Worker
from tests.backends import FakeClock
from tests.conformance.helpers import actions, claim_one, snapshot, token

HolderCall = Callable[[Queue, int, str], object]
HOLDER_CALLS: dict[str, HolderCall] = {
    "heartbeat": lambda q, i, t: q.heartbeat(i, t),
    "complete": lambda q, i, t: q.complete(i, t),
    "fail": lambda q, i, t: q.fail(i, t, "boom"),
    "fail_permanently": lambda q, i, t: q.fail(i, t, "boom", retryable=False),
    "release": lambda q, i, t: q.release(i, t, reason="stopping"),
}


@pytest.mark.parametrize("call", sorted(HOLDER_CALLS))
def test_the_holder_of_a_cancelled_job_is_refused_and_changes_nothing(
    queue: Queue, call: str
) -> None:
    queue.enqueue("work")
    job = claim_one(queue, lease_seconds=30)
    cancelled = queue.cancel(job.id, actor="carol", reason="customer withdrew")
    assert cancelled.status is JobState.CANCELLED
    assert cancelled.lease_token is None and cancelled.lease_expires_at is None  # lease dropped
    before = snapshot(queue)
    with pytest.raises(JobCancelled) as raised:
        HOLDER_CALLS[call](queue, job.id, token(job))
    assert isinstance(raised.value, LeaseLost)  # callers that only know LeaseLost stop too
    assert raised.value.job_id == job.id
    assert snapshot(queue) == before
    last = queue.history(job.id)[-1]
    assert (last.action, last.actor, last.detail) == ("cancel", "carol", "customer withdrew")
    assert (last.from_status, last.to_status) == (JobState.PROCESSING, JobState.CANCELLED)
    assert queue.stats().counts["processing"] == 0


def test_a_lease_taken_any_other_way_is_lease_lost_not_cancelled(queue: Queue) -> None:
    queue.enqueue("work")
    job = claim_one(queue)
    queue.mark_done(job.id, actor="carol")
    with pytest.raises(LeaseLost) as raised:
        queue.heartbeat(job.id, token(job))
    assert not isinstance(raised.value, JobCancelled)


def test_a_resubmitted_cancelled_job_runs_again_and_the_old_holder_stays_fenced(
    queue: Queue,
) -> None:
    queue.enqueue("work")
    old = claim_one(queue, "consumer-1")
    queue.cancel(old.id, actor="carol")
    queue.resubmit(old.id, actor="carol")
    new = claim_one(queue, "consumer-2")
    assert new.id == old.id and new.lease_token != old.lease_token
    with pytest.raises(LeaseLost):
        queue.complete(old.id, token(old))
    assert queue.complete(new.id, token(new)).status is JobState.DONE
    assert actions(queue, old.id) == [
        "enqueue", "claim", "cancel", "resubmit", "claim", "complete"
    ]  # fmt: skip


def test_a_cancel_after_the_finish_is_refused(queue: Queue) -> None:
    queue.enqueue("work")
    job = claim_one(queue)
    queue.complete(job.id, token(job))
    with pytest.raises(Exception, match="cannot cancel"):
        queue.cancel(job.id, actor="carol")
    assert queue.get(job.id).status is JobState.DONE


def test_settle_and_claim_refuses_outcomes_of_cancelled_jobs_and_applies_the_rest(
    queue: Queue,
) -> None:
    queue.enqueue_many(["a", "b", "c", "next"])
    a, b, c = queue.claim("w1", limit=3)
    for job in (a, b):
        queue.cancel(job.id, actor="carol")
    outcomes = [
        Outcome(a.id, token(a), OutcomeKind.DONE),
        Outcome(b.id, token(b), OutcomeKind.FAILED, "late"),
        Outcome(c.id, token(c), OutcomeKind.DONE),
    ]
    result = queue.settle_and_claim(outcomes, "w1", limit=1)
    assert sorted(result.lost) == sorted([a.id, b.id])
    assert [j.id for j in result.settled] == [c.id]
    assert [j.data for j in result.claimed] == ["next"]
    for job in (a, b):
        assert queue.get(job.id).status is JobState.CANCELLED
        assert actions(queue, job.id)[-1] == Transition.CANCEL.value


def test_the_worker_refuses_a_late_outcome_of_a_cancelled_job_and_carries_on(
    queue: Queue,
) -> None:
    queue.enqueue_many(["slow", "next"])
    heard: list[tuple[int, bool]] = []
    with Worker(
        queue, "w1", batch=1, on_settled=lambda o, j: heard.append((o.job_id, j is not None))
    ) as worker:
        slow = worker.next()
        assert slow is not None
        queue.cancel(slow.id, actor="carol")  # while the handler runs
        worker.done(slow)  # the handler ignored the cancel
        following = worker.next()
        assert following is not None and following.data == "next"
        worker.flush()
        assert worker.lost == [slow.id]
        worker.done(following)
    assert heard == [(slow.id, False), (following.id, True)]
    assert queue.get(slow.id).status is JobState.CANCELLED
    assert "complete" not in actions(queue, slow.id)
    assert queue.get(following.id).status is JobState.DONE


def test_the_worker_refuses_a_delayed_ack_of_a_job_cancelled_before_the_write(
    queue: Queue,
) -> None:
    queue.enqueue("a")
    heard: list[tuple[int, bool]] = []
    # A long ack delay: the outcome waits in the worker while the cancel lands.
    with Worker(
        queue,
        "w1",
        max_ack_delay=60,
        on_settled=lambda o, j: heard.append((o.job_id, j is not None)),
    ) as worker:
        job = worker.next()
        assert job is not None
        worker.done(job)
        queue.cancel(job.id, actor="carol")
    assert heard == [(job.id, False)]
    assert worker.lost == [job.id]
    assert queue.get(job.id).status is JobState.CANCELLED


def test_buffered_jobs_cancelled_before_handout_are_refused_on_close(queue: Queue) -> None:
    jobs = queue.enqueue_many(["a", "b", "c"])
    heard: list[tuple[int, OutcomeKind, bool]] = []
    worker = Worker(
        queue,
        "w1",
        batch=3,
        prefetch_seconds=None,
        on_settled=lambda o, j: heard.append((o.job_id, OutcomeKind(o.kind), j is not None)),
    )
    first = worker.next()
    assert first is not None and worker.buffered == 2
    buffered = [j for j in jobs if j.id != first.id]
    queue.cancel(buffered[0].id, actor="carol")
    worker.done(first)
    worker.close()  # gives the buffered two back: the cancelled one is refused
    assert (buffered[0].id, OutcomeKind.RELEASE, False) in heard
    assert (buffered[1].id, OutcomeKind.RELEASE, True) in heard
    assert (first.id, OutcomeKind.DONE, True) in heard
    assert worker.lost == [buffered[0].id]
    assert queue.get(buffered[0].id).status is JobState.CANCELLED
    assert queue.get(buffered[1].id).status is JobState.PENDING
    assert queue.get(first.id).status is JobState.DONE


def test_aged_buffered_jobs_cancelled_meanwhile_are_refused_and_fresh_ones_claimed(
    queue: Queue, clock: FakeClock
) -> None:
    a, b, _ = queue.enqueue_many(["a", "b", "c"])
    heard: list[tuple[int, bool]] = []
    with Worker(
        queue,
        "w1",
        batch=2,
        lease_seconds=10,
        prefetch_seconds=None,
        on_settled=lambda o, j: heard.append((o.job_id, j is not None)),
    ) as worker:
        first = worker.next()
        assert first is not None and worker.buffered == 1
        stale = b if first.id == a.id else a  # the one waiting in the buffer
        queue.cancel(stale.id, actor="carol")
        clock.advance(6)  # more than half the buffered lease is gone: it is given back
        worker.done(first)
        fresh = worker.next()
        assert fresh is not None and fresh.data == "c"
        worker.done(fresh)
    assert (stale.id, False) in heard
    assert stale.id in worker.lost
    assert queue.get(stale.id).status is JobState.CANCELLED
    assert actions(queue, stale.id) == ["enqueue", "claim", "cancel"]
