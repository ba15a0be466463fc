"""Chaos 3 and 4: every process killed at once; the producer killed between writing a
job file and enqueueing it."""

from __future__ import annotations

import signal

import pytest

from pqcore import JobState
from tests.services.system import System, audit, completion_lines
from tests.support import wait_for

CONSUMER_ARGS = ("--work-min", 0, "--work-max", 0.005, "--lease", 2, "--grace", 1)
MANAGER_ARGS = ("--rescue-interval", 0.5, "--check-interval", 1, "--leader-ttl", 2)


def job_files(system: System) -> list[str]:
    return sorted(p.name for p in system.jobs_dir.glob("job-*.txt"))


@pytest.mark.slow
def test_everything_killed_at_once_then_restarted_completes_everything(system: System) -> None:
    system.start("producer", "--interval", 0.002, "--count", 1500)
    for _ in range(3):
        system.start("consumer", *CONSUMER_ARGS)
    system.start("manager", *MANAGER_ARGS)
    wait_for(lambda: system.count(JobState.DONE) >= 300, 60, "300 jobs done")
    system.stop_all(signal.SIGKILL)  # all at once, mid-flight
    before = system.queue.stats()
    files_at_crash = len(job_files(system))
    held = before.counts["processing"]

    system.run("producer", "--count", 0, timeout=60)  # restart: reconcile only
    for _ in range(3):
        system.start("consumer", *CONSUMER_ARGS)
    system.start("manager", *MANAGER_ARGS)
    files = job_files(system)
    wait_for(lambda: system.count(JobState.DONE) == len(files), 90, "every job file done")
    system.stop_all(signal.SIGTERM)

    result = audit(system)
    print(
        f"\nCHAOS kill-all: files={files_at_crash} jobs_before_restart={before.total} "
        f"done_before={before.counts['done']} processing_at_crash={held} "
        f"orphans_reconciled={len(files) - before.total} redeliveries={result.redeliveries} "
        f"duplicate_lines={result.duplicate_lines}"
    )
    assert result.problems == []
    assert result.jobs == len(files) == files_at_crash


@pytest.mark.slow
def test_producer_killed_between_file_write_and_enqueue(system: System) -> None:
    producer = system.start("producer", "--count", 1, PQ_TEST_PAUSE_AFTER_FILE_WRITE=120)
    wait_for(lambda: "test pause after writing" in producer.text(), 30, "the injected pause")
    producer.signal(signal.SIGKILL)
    producer.wait(10)
    [name] = job_files(system)
    assert system.queue.stats().total == 0  # the file exists, its job does not

    restarted = system.run("producer", "--count", 0)
    assert restarted.popen.returncode == 0
    assert "1 orphan(s) enqueued" in restarted.text()
    [job] = system.queue.list_jobs().jobs
    assert (job.data, job.dedupe_key, job.status) == (name, name, JobState.PENDING)

    system.run("producer", "--count", 0)  # again, job still pending: nothing new
    assert system.queue.stats().total == 1

    system.start("consumer", "--work-min", 0, "--work-max", 0)
    wait_for(lambda: system.count(JobState.DONE) == 1, 30, "the reconciled job done")
    again = system.run("producer", "--count", 0)  # job done: must not be enqueued again
    assert "0 orphan(s) enqueued" in again.text()
    assert system.queue.stats().total == 1
    assert completion_lines(system.jobs_dir / name) == [job.id]
    system.stop_all(signal.SIGTERM)
    assert audit(system).problems == []
