"""Dependencies: a job enqueued with after=[...] is claimable only once every job it names
is done; a job named that dead-letters or is cancelled makes it follow its policy, applied
by the database once, whatever path finished the job it waited for."""

from __future__ import annotations

import sqlite3
import time

import pytest

from pqcore import (
    DependencyFailure,
    EnqueueRequest,
    InvalidArgument,
    Job,
    JobState,
    Outcome,
    Queue,
)
from tests.backends import BackendHandle, FakeClock, QueueMaker
from tests.conformance.helpers import actions, claim_one, snapshot, token


def claim_all(queue: Queue, **options: object) -> list[Job]:
    return queue.claim("c", limit=100, **options)  # type: ignore[arg-type]


def test_a_job_waits_until_every_job_it_names_is_done(queue: Queue) -> None:
    a, b = queue.enqueue("a"), queue.enqueue("b")
    final = queue.enqueue("final", after=[a, b.id], priority=100)
    assert final.status is JobState.PENDING and final.waiting_for == 2 and final.waiting
    held = {job.data: job for job in claim_all(queue)}
    assert set(held) == {"a", "b"}  # the high priority of a waiting job does not matter
    queue.complete(held["a"].id, token(held["a"]))
    assert queue.get(final.id).waiting_for == 1
    assert claim_all(queue) == []
    queue.complete(held["b"].id, token(held["b"]), result=[1])
    assert queue.get(final.id).waiting_for == 0
    assert claim_one(queue).id == final.id
    deps = queue.dependencies(final.id)
    assert [(d.depends_on, d.resolution) for d in deps] == [
        (a.id, JobState.DONE),
        (b.id, JobState.DONE),
    ]
    assert [d.job_id for d in queue.dependents(a.id)] == [final.id]


@pytest.mark.parametrize("how", ["dead_letter", "operator_cancel", "rescue_out_of_attempts"])
def test_a_dependency_that_fails_cancels_its_dependents_by_default(
    queue: Queue, clock: FakeClock, how: str
) -> None:
    dep = queue.enqueue("dep", max_attempts=1)
    other = queue.enqueue("other")
    child = queue.enqueue("child", after=[dep, other])
    grandchild = queue.enqueue("grandchild", after=[child])
    [held] = [j for j in claim_all(queue) if j.id == dep.id]
    if how == "dead_letter":
        queue.fail(dep.id, token(held), "boom", retryable=False)
    elif how == "operator_cancel":
        queue.cancel(dep.id, actor="alice")
    else:  # the manager, once the lease expired, with no attempt left
        clock.advance(3600)
        assert dep.id in [j.id for j in queue.rescue_expired()]
        assert queue.get(dep.id).status is JobState.PERMANENTLY_FAILED
    for job_id in (child.id, grandchild.id):  # the cancel cascades
        job = queue.get(job_id)
        assert job.status is JobState.CANCELLED
        assert "which it depends on, ended" in (job.error or "")
        assert actions(queue, job_id) == ["enqueue", "cancel"]
        assert queue.history(job_id)[-1].actor == "pq"
    assert queue.get(other.id).status in (JobState.PROCESSING, JobState.PENDING)  # untouched
    # The child still counts the other job it waits for (a resubmit would wait for it).
    assert (queue.get(child.id).waiting_for, queue.get(grandchild.id).waiting_for) == (1, 0)


def test_on_dependency_failure_run_runs_anyway_once_the_rest_finished(queue: Queue) -> None:
    dep, other = queue.enqueue("dep"), queue.enqueue("other")
    child = queue.enqueue("child", after=[dep, other], on_dependency_failure="run")
    held = {j.data: j for j in claim_all(queue)}
    queue.fail(dep.id, token(held["dep"]), "boom", retryable=False)
    assert queue.get(child.id).waiting_for == 1  # still waits for the other one
    assert claim_all(queue) == []
    queue.complete(other.id, token(held["other"]))
    assert claim_one(queue).id == child.id
    [d1, d2] = queue.dependencies(child.id)
    assert d1.on_failure is DependencyFailure.RUN
    assert (d1.resolution, d2.resolution) == (JobState.PERMANENTLY_FAILED, JobState.DONE)


def test_a_later_move_of_a_finished_dependency_changes_nothing(queue: Queue) -> None:
    """Each dependency row is resolved once: marking a dead job done afterwards (or
    resubmitting it and completing it) does not count it off a second time."""
    dep, other = queue.enqueue("dep"), queue.enqueue("other")
    child = queue.enqueue("child", after=[dep, other], on_dependency_failure="run")
    held = {j.data: j for j in claim_all(queue)}
    queue.fail(dep.id, token(held["dep"]), "boom", retryable=False)
    queue.mark_done(dep.id, actor="alice")
    assert queue.get(child.id).waiting_for == 1
    queue.complete(other.id, token(held["other"]))
    assert queue.get(child.id).waiting_for == 0


def test_jobs_already_finished_are_resolved_at_the_enqueue(queue: Queue) -> None:
    done, dead = queue.enqueue("done"), queue.enqueue("dead")
    held = {j.data: j for j in claim_all(queue)}
    queue.complete(done.id, token(held["done"]))
    queue.fail(dead.id, token(held["dead"]), "boom", retryable=False)
    ready = queue.enqueue("ready", after=[done])
    anyway = queue.enqueue("anyway", after=[done, dead], on_dependency_failure="run")
    cancelled = queue.enqueue("cancelled", after=[done, dead])
    assert (ready.waiting_for, anyway.waiting_for) == (0, 0)
    assert cancelled.status is JobState.CANCELLED
    assert actions(queue, cancelled.id) == ["enqueue", "cancel"]
    assert {j.id for j in claim_all(queue)} == {ready.id, anyway.id}


def test_fan_out_and_fan_in_through_batched_settlements(queue: Queue) -> None:
    items = queue.enqueue_many([f"item-{i}" for i in range(40)])
    final = queue.enqueue("final", after=items)
    seen: list[int] = []
    outcomes: list[Outcome] = []
    while True:
        result = queue.settle_and_claim(outcomes, "w", limit=7)
        outcomes = [Outcome(j.id, token(j), result=f'"{j.data}"') for j in result.claimed]
        seen += [j.id for j in result.claimed]
        if not result.claimed:
            break
    assert seen[-1] == final.id and sorted(seen) == sorted([*(j.id for j in items), final.id])
    assert queue.get(items[3].id).result_value() == "item-3"
    final_claim = next(e for e in queue.history(final.id) if e.action == "claim")
    last_item_done = max(
        e.id for j in items for e in queue.history(j.id) if e.to_status is JobState.DONE
    )
    assert final_claim.id > last_item_done


def test_a_waiting_job_does_not_wake_waiters_and_its_dependency_does(
    make_queue: QueueMaker,
) -> None:
    """A consumer waiting for work must not spin on a job that waits for dependencies,
    and must wake when the dependency completes (from another handle)."""
    waiter, other = make_queue(), make_queue()
    dep = other.enqueue("dep")
    [held] = other.claim("c")
    other.enqueue("child", after=[dep])
    started = time.monotonic()
    assert waiter.wait_for_jobs(0.3) is False
    assert time.monotonic() - started >= 0.29
    assert waiter.stats().waiting == 1 and waiter.stats().oldest_pending_age is None

    import threading

    threading.Timer(0.2, lambda: other.complete(dep.id, token(held))).start()
    started = time.monotonic()
    assert waiter.wait_for_jobs(5.0) is True
    assert time.monotonic() - started < 4.0
    assert waiter.claim("c")[0].data == "child"
    assert waiter.doctor() == []


def test_limited_and_paused_queues_never_claim_a_waiting_job(queue: Queue) -> None:
    dep = queue.enqueue("dep", queue="other")
    queue.enqueue("child", queue="limited", after=[dep])
    queue.enqueue("free", queue="limited")
    queue.set_limits("limited", concurrency=5, actor="ops")
    assert [j.data for j in queue.claim("c", limit=5, queues=["limited"])] == ["free"]
    queue.set_limits("limited", key_concurrency=2, actor="ops")
    assert queue.claim("c", limit=5, queues=["limited"]) == []
    [held] = queue.claim("c", queues=["other"])
    queue.complete(held.id, token(held))
    assert [j.data for j in queue.claim("c", limit=5, queues=["limited"])] == ["child"]


def test_bad_dependencies_are_refused_and_change_nothing(queue: Queue) -> None:
    real = queue.enqueue("real")
    before = snapshot(queue)
    with pytest.raises(InvalidArgument, match="do not exist: 999"):
        queue.enqueue_many(["fine", EnqueueRequest("bad", after=(real.id, 999))])
    with pytest.raises(InvalidArgument, match="on_dependency_failure"):
        queue.enqueue("bad", after=[real], on_dependency_failure="ignore")
    with pytest.raises(InvalidArgument, match="job id"):
        queue.enqueue("bad", after=["7"])
    assert snapshot(queue) == before


def test_a_dedupe_key_an_active_job_holds_returns_it_without_new_dependencies(
    queue: Queue,
) -> None:
    dep = queue.enqueue("dep")
    first = queue.enqueue("x", dedupe_key="k")
    again = queue.enqueue("x", dedupe_key="k", after=[dep])
    assert again.id == first.id and again.waiting_for == 0
    assert queue.dependencies(first.id) == []
    fresh = queue.enqueue("y", dedupe_key="k2", after=[dep])
    assert fresh.waiting_for == 1


def test_an_operator_resubmit_of_a_job_cancelled_by_its_dependency_runs_it(
    queue: Queue, clock: FakeClock
) -> None:
    dep = queue.enqueue("dep")
    child = queue.enqueue("child", after=[dep])
    queue.cancel(dep.id, actor="alice")
    assert queue.get(child.id).status is JobState.CANCELLED
    queue.resubmit(child.id, actor="alice", reason="run it after all")
    assert claim_one(queue).id == child.id  # every dependency of it is resolved now


def tamper(backend: BackendHandle, statement: str, *params: object) -> None:
    """Change the database behind the queue's back (the doctor must notice)."""
    if backend.name == "sqlite":
        with sqlite3.connect(backend.url) as conn:
            conn.execute(statement, params)
        return
    import psycopg

    with psycopg.connect(backend.url) as conn:
        conn.execute(statement.replace("?", "%s"), params)  # type: ignore[arg-type]


def test_the_doctor_notices_every_broken_dependency_invariant(
    backend: BackendHandle, make_queue: QueueMaker
) -> None:
    queue = make_queue()
    dep = queue.enqueue("dep")
    child = queue.enqueue("child", after=[dep])
    assert queue.doctor() == []
    tamper(backend, "UPDATE jobs SET waiting_for = 0 WHERE id = ?", child.id)
    assert queue.doctor() == [
        f"job {child.id} counts 0 jobs to wait for, but 1 of its dependencies are open"
    ]
    claimed = {j.id: j for j in queue.claim("c", limit=2)}  # the broken count lets it run
    assert child.id in claimed
    assert f"job {child.id} was claimed before job {dep.id}" in " ".join(queue.doctor())
    tamper(backend, "UPDATE jobs SET has_dependents = ? WHERE id = ?", False, dep.id)
    queue.complete(dep.id, token(claimed[dep.id]))  # no trigger resolves it now
    assert f"job {child.id} still waits for job {dep.id}, which is done" in queue.doctor()
    tamper(backend, "UPDATE job_dependencies SET resolved_at = 1, resolution = 'done'")
    queue.complete(child.id, token(claimed[child.id]))
    assert queue.doctor() == [  # the history keeps what happened
        f"job {child.id} was claimed before job {dep.id}, which it depends on, had finished"
    ]
