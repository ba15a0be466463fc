"""Chaos 5 and 6: a frozen consumer that wakes after losing its lease, and SIGTERM
in the middle of a job."""

from __future__ import annotations

import signal
import time

import pytest

from pqcore import JobState
from tests.services.system import System, audit, completion_lines, pid_of
from tests.support import wait_for

MANAGER_ARGS = ("--rescue-interval", 0.3, "--check-interval", 1, "--leader-ttl", 2)


def enqueue_file(system: System, name: str) -> int:
    system.write_job_file(name)
    return system.queue.enqueue(name, dedupe_key=name).id


def holder_pid(system: System, job_id: int) -> int | None:
    job = system.queue.get(job_id)
    if job.status is not JobState.PROCESSING or not job.consumer_id:
        return None
    return pid_of(job.consumer_id)


@pytest.mark.slow
def test_zombie_consumer_late_completion_is_rejected(system: System) -> None:
    system.start("manager", *MANAGER_ARGS)
    zombie = system.start("consumer", "--work-min", 3, "--work-max", 3, "--lease", 1.5)
    job_id = enqueue_file(system, "job-zombie.txt")
    wait_for(lambda: holder_pid(system, job_id) == zombie.pid, 30, "the zombie to claim the job")
    zombie.signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    wait_for(
        lambda: any(e.action == "rescue" for e in system.queue.history(job_id)),
        30,
        "the manager to rescue the expired lease",
    )
    rescuer = system.start("consumer", "--work-min", 0, "--work-max", 0)
    wait_for(lambda: system.queue.get(job_id).status is JobState.DONE, 30, "another consumer")
    zombie.signal(signal.SIGCONT)
    print(f"\nCHAOS zombie: stopped for {time.monotonic() - stopped_at:.1f}s")
    wait_for(lambda: f"lease lost job={job_id}" in zombie.text(), 30, "the zombie to notice")

    assert completion_lines(system.jobs_dir / "job-zombie.txt") == [job_id]
    history = system.queue.history(job_id)
    [done] = [e for e in history if e.to_status is JobState.DONE]
    assert pid_of(done.actor) == rescuer.pid
    # The woken consumer is healthy: with the other one gone it takes the next job.
    rescuer.signal(signal.SIGTERM)
    assert rescuer.wait(30) == 0
    second = enqueue_file(system, "job-after.txt")
    wait_for(lambda: system.queue.get(second).status is JobState.DONE, 30, "the next job")
    assert pid_of(system.queue.history(second)[-1].actor) == zombie.pid
    system.stop_all(signal.SIGTERM)
    assert audit(system).problems == []


@pytest.mark.slow
def test_zombie_completion_after_a_stall_rescue_is_rejected(system: System) -> None:
    """The zombie's lease outlives the freeze (no heartbeat is due when it wakes), the
    manager took the job back by stall timeout: the zombie finishes its work and its
    *completion* is what the fence rejects."""
    system.start("manager", *MANAGER_ARGS, "--stall-timeout", 1)
    zombie = system.start("consumer", "--work-min", 2, "--work-max", 2, "--lease", 60)
    job_id = enqueue_file(system, "job-zombie.txt")
    wait_for(lambda: holder_pid(system, job_id) == zombie.pid, 30, "the zombie to claim the job")
    zombie.signal(signal.SIGSTOP)
    wait_for(
        lambda: any(e.action == "rescue" for e in system.queue.history(job_id)),
        30,
        "the manager to rescue the stalled job",
    )
    system.start("consumer", "--work-min", 0, "--work-max", 0)
    wait_for(lambda: system.queue.get(job_id).status is JobState.DONE, 30, "another consumer")
    zombie.signal(signal.SIGCONT)
    wait_for(
        lambda: f"lease lost job={job_id} attempt=1 (done rejected)" in zombie.text(),
        30,
        "the zombie's completion to be rejected",
    )
    assert completion_lines(system.jobs_dir / "job-zombie.txt") == [job_id]
    assert [e.to_status for e in system.queue.history(job_id)].count(JobState.DONE) == 1
    system.stop_all(signal.SIGTERM)
    assert audit(system).problems == []


def sigterm_mid_job(system: System, *consumer_args: str | float, payload: str) -> tuple[int, float]:
    """Start a consumer, SIGTERM it while it holds the job; returns (job id, seconds the
    consumer took to exit)."""
    consumer = system.start(
        "consumer",
        "--lease",
        60,
        *consumer_args,
        PQ_HANDLER_MODULES="tests.services.handlers_for_tests",
    )
    if payload.startswith("job-"):
        job_id = enqueue_file(system, payload)
    else:
        job_id = system.queue.enqueue(payload).id
    wait_for(lambda: holder_pid(system, job_id) == consumer.pid, 30, "the claim")
    asked = time.monotonic()
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(30) == 0
    [row] = [c for c in system.queue.consumers() if c.pid == consumer.pid]
    assert row.state == "stopped"
    return job_id, time.monotonic() - asked


@pytest.mark.slow
def test_sigterm_releases_a_job_that_cannot_finish_within_the_grace(system: System) -> None:
    job_id, took = sigterm_mid_job(
        system, "--work-min", 30, "--work-max", 30, "--grace", 1, payload="job-long.txt"
    )
    job = system.queue.get(job_id)
    assert job.status is JobState.PENDING and job.attempts == 0
    assert system.queue.history(job_id)[-1].action == "release"
    assert completion_lines(system.jobs_dir / "job-long.txt") == []
    print(f"\nCHAOS sigterm: released at once, consumer exited in {took:.2f}s (lease 60s)")
    assert took < 30  # well before the 60 s lease would have expired


@pytest.mark.slow
def test_sigterm_lets_a_job_finish_within_the_grace(system: System) -> None:
    job_id, _ = sigterm_mid_job(
        system, "--work-min", 1, "--work-max", 1, "--grace", 20, payload="job-short.txt"
    )
    assert system.queue.get(job_id).status is JobState.DONE
    assert completion_lines(system.jobs_dir / "job-short.txt") == [job_id]


@pytest.mark.slow
def test_sigterm_releases_the_job_of_a_handler_that_ignores_it(system: System) -> None:
    job_id, took = sigterm_mid_job(system, "--grace", 1, payload="stubborn:30")
    job = system.queue.get(job_id)
    assert job.status is JobState.PENDING
    assert system.queue.history(job_id)[-1].action == "release"
    assert took < 30
