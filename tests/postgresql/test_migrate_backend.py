"""pq migrate-backend: a SQLite queue moves to PostgreSQL whole, ids and history kept,
and the command refuses when that could lose or duplicate work."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from pqcore import EnqueueRequest, JobState, Queue, open_queue
from pqcore.exceptions import MigrationRefused
from pqcore.transfer import migrate_backend
from tests.conftest import pq_command


def build_sqlite_queue(path: Path) -> Queue:
    """A queue with jobs in every state, a purged job (id 8) and a stopped consumer."""
    queue = open_queue(str(path))
    queue.enqueue_many(
        [
            "jobs/done.txt",
            "jobs/failed.txt",
            "jobs/dead.txt",
            "jobs/cancelled.txt",
            EnqueueRequest("jobs/later.txt", delay=3600, priority=7, queue="mail"),
            EnqueueRequest("jobs/unique.txt", dedupe_key="k-1", concurrency_key="customer-1"),
            "jobs/stalled.txt",
            "jobs/purged.txt",
        ]
    )
    purged = queue.list_jobs().jobs[0]  # the newest: jobs/purged.txt
    queue.mark_done(purged.id, actor="ops")
    assert queue.purge_done(0) == 1  # its id now lives on only in sqlite_sequence
    held = {job.data: job for job in queue.claim("old-consumer", limit=5)}
    queue.complete(held["jobs/done.txt"].id, held["jobs/done.txt"].lease_token or "")
    queue.fail(held["jobs/failed.txt"].id, held["jobs/failed.txt"].lease_token or "", "flaky")
    dead = held["jobs/dead.txt"]
    queue.fail(dead.id, dead.lease_token or "", "bad input", retryable=False)
    queue.release(held["jobs/cancelled.txt"].id, held["jobs/cancelled.txt"].lease_token or "")
    queue.cancel(held["jobs/cancelled.txt"].id, actor="ops", reason="not needed")
    # jobs/unique.txt stays processing under a lease that expired long ago
    queue.heartbeat(
        held["jobs/unique.txt"].id, held["jobs/unique.txt"].lease_token or "", lease_seconds=0.001
    )
    queue.consumer_register("old-consumer", host="h1", pid=42, queues="*")
    queue.consumer_deregister("old-consumer")
    queue.pause("mail", actor="ops", reason="maintenance")
    queue.set_limits("default", concurrency=3, key_rate=2, rate_period=60, actor="ops")
    queue.config_set("max_attempts", 7, actor="ops")
    return queue


def snapshot(queue: Queue | Queue) -> tuple[object, ...]:
    jobs = queue.list_jobs(limit=1000).jobs
    return (
        jobs,
        {job.id: queue.history(job.id) for job in jobs},
        queue.consumers(),
        queue.stats().counts,
        queue.controls(),
        [(s.name, s.value, s.source, s.updated_by) for s in queue.config_list()],
        [dataclasses.replace(entry, id=0) for entry in queue.audit_log()],
    )


def test_migration_copies_everything_and_refuses_a_second_run(tmp_path: Path, pg_url: str) -> None:
    source = build_sqlite_queue(tmp_path / "queue.db")
    purged_id = 8
    assert purged_id not in {job.id for job in source.list_jobs().jobs}
    before = snapshot(source)
    source.close()

    command = [*pq_command(), "migrate-backend", "--from", f"sqlite:///{tmp_path}/queue.db",
               "--to", pg_url]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "copied 7 jobs" in result.stdout

    with open_queue(pg_url) as target:
        assert snapshot(target) == before
        assert target.doctor() == []
        assert target.enqueue("jobs/new.txt").id > purged_id  # no id is ever reused
        rescued = target.rescue_expired()
        assert [job.data for job in rescued] == ["jobs/unique.txt"]  # the manager carries on
        counts = target.stats().counts

    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1
    assert "target already holds 8 job(s)" in again.stderr
    with open_queue(pg_url) as target:
        assert target.stats().counts == counts  # nothing duplicated


def test_migration_refuses_while_a_consumer_is_alive(tmp_path: Path, pg_url: str) -> None:
    with open_queue(str(tmp_path / "queue.db")) as source:
        source.enqueue("jobs/1.txt")
        source.consumer_register("busy-1", host="h1", pid=7, queues="*")
    with pytest.raises(MigrationRefused, match=r"1 live consumer\(s\) \(busy-1\)"):
        migrate_backend(str(tmp_path / "queue.db"), pg_url)
    with open_queue(pg_url) as target:
        assert target.stats().total == 0
    report = migrate_backend(str(tmp_path / "queue.db"), pg_url, force=True)
    assert (report.jobs, report.consumers) == (1, 1)


def test_migration_refuses_while_a_job_is_leased(tmp_path: Path, pg_url: str) -> None:
    with open_queue(str(tmp_path / "queue.db")) as source:
        job = source.enqueue("jobs/1.txt")
        source.claim("gone-consumer", lease_seconds=3600)
    with pytest.raises(MigrationRefused, match=rf"job\(s\) under an unexpired lease \({job.id}\)"):
        migrate_backend(f"sqlite:///{tmp_path}/queue.db", pg_url)


def test_an_empty_source_migrates_and_ids_start_at_one(tmp_path: Path, pg_url: str) -> None:
    open_queue(str(tmp_path / "queue.db")).close()
    report = migrate_backend(str(tmp_path / "queue.db"), pg_url)
    assert report.jobs == 0
    with open_queue(pg_url) as target:
        assert target.enqueue("jobs/1.txt").id == 1
        assert target.get(1).status is JobState.PENDING


def test_a_missing_source_is_reported(tmp_path: Path, pg_url: str) -> None:
    command = [*pq_command(), "migrate-backend", "--from", str(tmp_path / "nope.db"),
               "--to", pg_url]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert "no queue database at" in result.stderr


def test_migration_keeps_results_progress_and_dependencies(tmp_path: Path, pg_url: str) -> None:
    """Results, progress, and jobs waiting for others arrive as they were, and the target's
    database goes on resolving the copied dependencies."""
    with open_queue(str(tmp_path / "queue.db")) as source:
        done, dead, running, first = (source.enqueue(f"jobs/{n}.txt") for n in range(4))
        held = {job.id: job for job in source.claim("old", limit=3)}
        source.complete(done.id, held[done.id].lease_token or "", result={"rows": [1, 2]})
        source.fail(dead.id, held[dead.id].lease_token or "", "bad", retryable=False)
        source.progress(running.id, held[running.id].lease_token or "", 0.25, "a quarter")
        source.heartbeat(running.id, held[running.id].lease_token or "", lease_seconds=0.001)
        waiting = source.enqueue("jobs/waiting.txt", after=[first, done])
        anyway = source.enqueue("jobs/anyway.txt", after=[dead], on_dependency_failure="run")
        last = source.enqueue("jobs/last.txt", after=[waiting, anyway])
        ids = [done.id, dead.id, running.id, first.id, waiting.id, anyway.id, last.id]
        before = [(source.get(i), source.dependencies(i), source.dependents(i)) for i in ids]
    report = migrate_backend(str(tmp_path / "queue.db"), pg_url)
    assert report.jobs == 7
    with open_queue(pg_url) as target:
        after = [(target.get(i), target.dependencies(i), target.dependents(i)) for i in ids]
        assert after == before
        assert target.get(done.id).result_value() == {"rows": [1, 2]}
        assert target.get(waiting.id).waiting_for == 1 and target.stats().waiting == 2
        assert target.doctor() == []
        claimed = target.claim("new", limit=10)
        assert {job.id for job in claimed} == {first.id, anyway.id}  # waiting ones are not
        for job in claimed:
            target.complete(job.id, job.lease_token or "")
        [next_job] = target.claim("new", limit=10)  # the copied rows were resolved here
        assert next_job.id == waiting.id
        target.complete(next_job.id, next_job.lease_token or "")
        assert [job.id for job in target.claim("new")] == [last.id]
        assert target.doctor() == []
