"""What PostgreSQL does differently from SQLite: consumers in separate processes claim
side by side (SKIP LOCKED), idle consumers wake on NOTIFY, and final-state counts are
kept as appended deltas."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections import Counter
from typing import Any

import psycopg
import pytest

from pqcore import JobState, Outcome, Queue, open_queue, reading
from pqcore.drivers.postgresql import PostgresDriver
from tests.support import wait_for


def drain(url: str, consumer_id: str) -> list[int]:
    """A consumer process: claim one job at a time and complete it until none is left."""
    done = []
    with open_queue(url) as queue:
        held: list[Outcome] = []
        while True:
            result = queue.settle_and_claim(held, consumer_id, limit=1)
            done += [job.id for job in result.settled]
            if not result.claimed:
                return done
            held = [Outcome(job.id, job.lease_token or "") for job in result.claimed]


def test_concurrent_consumer_processes_complete_every_job_exactly_once(pg_url: str) -> None:
    with open_queue(pg_url) as queue:
        jobs = queue.enqueue_many([f"jobs/{i}.txt" for i in range(400)])
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        # A deadline on the results: a worker that dies at start is replaced by the pool
        # and its task never answers, which must fail this test, not hang it.
        pending = pool.starmap_async(drain, [(pg_url, f"consumer-{n}") for n in range(4)], 1)
        results = pending.get(timeout=240)
    completed = Counter(job_id for ids in results for job_id in ids)
    assert set(completed) == {job.id for job in jobs}
    assert max(completed.values()) == 1
    with open_queue(pg_url) as queue:
        stats = queue.stats()
        assert stats.counts["done"] == 400 and stats.total == 400
        assert queue.doctor() == []


def test_claims_skip_rows_another_transaction_holds(pg_url: str) -> None:
    with open_queue(pg_url) as queue:
        first, second = queue.enqueue_many(["a", "b"])
        with psycopg.connect(pg_url) as other:  # holds a row lock, as a slow claimer would
            other.execute("SELECT id FROM jobs WHERE id = %s FOR UPDATE", [first.id])
            [claimed] = queue.claim("c1", limit=2)
            assert claimed.id == second.id  # did not wait for the lock, took the free job
        [later] = queue.claim("c1")
        assert later.id == first.id


# The waiter's timeout and its poll: an hour each, so only a NOTIFY can end its wait
# within the test (a wait that ends by timeout also looks again, and would find the job).
SLEEP_SECONDS = 3600.0
WAKE_BOUND = 30.0  # seconds the test gives the woken waiter: far below the hour


def blocked_on_notifications(thread: threading.Thread) -> bool:
    """True while ``thread`` is inside psycopg's ``Connection.notifies()`` with a timeout
    above a second: sleeping on its LISTEN connection, its look for work done. (The
    re-arm before each look drains pending notifications with ``timeout=0``.)"""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "notifies" and f"{os.sep}psycopg{os.sep}" in code.co_filename:
            timeout = frame.f_locals.get("timeout")
            return isinstance(timeout, int | float) and timeout > 1
        frame = frame.f_back
    return False


def test_an_idle_waiter_wakes_on_notify_not_on_its_poll(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job is enqueued only once the waiter is provably asleep on LISTEN, with its
    timeout and its re-check an hour away: only the NOTIFY can wake it within the test.
    A second, independent LISTEN connection sees the NOTIFY the enqueue sent."""
    woke: list[bool] = []
    monkeypatch.setattr(PostgresDriver, "recheck_seconds", SLEEP_SECONDS)
    with open_queue(pg_url) as waiter, open_queue(pg_url) as producer:
        thread = threading.Thread(
            target=lambda: woke.append(waiter.wait_for_jobs(SLEEP_SECONDS)), daemon=True
        )
        thread.start()
        wait_for(
            lambda: blocked_on_notifications(thread) or not thread.is_alive(),
            15,
            "the waiter asleep on its LISTEN connection",
            interval=0.01,
        )
        assert thread.is_alive() and woke == []  # nothing to find yet: it sleeps

        with psycopg.connect(pg_url, autocommit=True) as observer:
            observer.execute("LISTEN pq_jobs")
            job = producer.enqueue("jobs/1.txt")
            seen = list(observer.notifies(timeout=10, stop_after=1))
        thread.join(WAKE_BOUND)
        assert not thread.is_alive(), "the NOTIFY did not wake the waiter"
        claimed = waiter.claim("waiter")
    assert [(n.channel, n.payload) for n in seen] == [("pq_jobs", "default")]
    assert woke == [True]
    assert [j.id for j in claimed] == [job.id]


def test_a_waiter_for_one_queue_ignores_work_in_another(pg_url: str) -> None:
    with open_queue(pg_url) as queue:
        queue.enqueue("jobs/1.txt", queue="images")
        assert queue.wait_for_jobs(0.3, queues=["mail"]) is False
        assert queue.wait_for_jobs(0.3, queues=["images"]) is True


def test_final_state_counts_stay_exact_across_folds(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reading, "FOLD_DELTAS_AT", 5)
    with open_queue(pg_url) as queue:
        queue.enqueue_many([f"jobs/{i}" for i in range(30)])
        queue.enqueue_many([f"other/{i}" for i in range(5)], actor="p")
        for n, job in enumerate(queue.claim("c1", limit=20)):
            if n % 4 == 0:
                queue.fail(job.id, job.lease_token or "", "bad", retryable=False)
            else:
                queue.complete(job.id, job.lease_token or "")
            queue.stats()  # folds whenever 5 delta rows piled up
        queue.cancel(25, actor="op")
        with psycopg.connect(pg_url) as conn:
            rows = conn.execute("SELECT count(*) FROM job_count_deltas").fetchone()
        assert rows is not None and rows[0] <= 5 + 3  # folded, not one row per transition
        stats = queue.stats()
        assert stats.counts == {
            JobState.PENDING.value: 14, JobState.PROCESSING.value: 0, JobState.DONE.value: 15,
            JobState.FAILED.value: 0, JobState.PERMANENTLY_FAILED.value: 5,
            JobState.CANCELLED.value: 1,
        }  # fmt: skip
        assert queue.purge_done(0) == 15
        assert queue.stats().counts[JobState.DONE.value] == 0
        assert queue.doctor() == []


def test_doctor_reports_a_count_that_drifted(pg_url: str) -> None:
    with open_queue(pg_url) as queue:
        [job] = queue.enqueue_many(["a"])
        [held] = queue.claim("c1")
        queue.complete(held.id, held.lease_token or "")
        with psycopg.connect(pg_url) as conn:
            conn.execute(
                "INSERT INTO job_count_deltas (queue, status, n) VALUES ('default', 'done', 1)"
            )
        assert queue.doctor() == ["count of done jobs in queue default is 2, actually 1"]
        assert job.id == held.id


def _claim_in_child(queue: Queue, result: Any) -> None:
    queue.wait_for_jobs(5.0)
    result.put([job.id for job in queue.claim("child", limit=10)])


def test_a_queue_opened_before_fork_serves_parent_and_child(pg_url: str) -> None:
    context = multiprocessing.get_context("fork")
    with open_queue(pg_url) as queue:
        queue.enqueue_many(["a", "b"])
        assert queue.wait_for_jobs(0.1)  # parent's pool and listener exist before the fork
        result = context.Queue()
        child = context.Process(target=_claim_in_child, args=(queue, result))
        child.start()
        claimed = result.get(timeout=60)
        child.join(60)
        assert child.exitcode == 0 and len(claimed) == 2
        third = queue.enqueue("c")  # the parent's connections survived the child's exit
        assert [job.id for job in queue.claim("parent")] == [third.id]
        assert queue.wait_for_jobs(0.1) is False


def test_racing_enqueues_of_one_dedupe_key_make_one_job(pg_url: str) -> None:
    queues = [open_queue(pg_url) for _ in range(4)]
    start = threading.Barrier(len(queues))
    ids: list[int] = []

    def enqueue(queue: Queue) -> None:
        start.wait(timeout=30)
        for _ in range(20):
            ids.append(queue.enqueue("jobs/report.txt", dedupe_key="report-2026-11").id)

    threads = [threading.Thread(target=enqueue, args=(q,)) for q in queues]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert len(ids) == 80 and len(set(ids)) == 1
        assert queues[0].stats().counts["pending"] == 1
        assert [e.action for e in queues[0].history(ids[0])] == ["enqueue"]
    finally:
        for q in queues:
            q.close()
