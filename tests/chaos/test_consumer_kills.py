"""Chaos 1 and 2: thousands of jobs while consumers (and the manager) are SIGKILLed.

Real processes, real SIGKILL at random moments; the test restarts what it killed,
as supervisor would. Afterwards every job is done exactly once, every job file holds
exactly one completion line, and `pq doctor` is clean. The figures (kills,
redeliveries, duplicates, recovery times) are printed for the closing note.
"""

from __future__ import annotations

import random
import signal
import statistics
import time

import pytest

from pqcore import JobState
from services.manager.manager import LEADERSHIP
from tests.services.system import Proc, System, audit, pid_of
from tests.support import wait_for

CONSUMERS = 4
# Short everything: leases of 2 s, rescue every 0.5 s, zero work time.
CONSUMER_ARGS = ("--work-min", 0, "--work-max", 0.005, "--lease", 2, "--grace", 1)
MANAGER_ARGS = (
    "--rescue-interval",
    0.5,
    "--check-interval",
    1,
    "--leader-ttl",
    2,
    "--consumer-timeout",
    5,
)


def run_chaos(
    system: System, *, jobs: int, kill_manager: bool, seed: int, deadline: float = 150
) -> None:
    rng = random.Random(seed)
    system.start("producer", "--interval", 0, "--count", jobs)
    consumers: list[Proc] = [system.start("consumer", *CONSUMER_ARGS) for _ in range(CONSUMERS)]
    manager = system.start("manager", *MANAGER_ARGS)
    kills: list[tuple[float, int]] = []  # (time, pid) of killed consumers
    manager_kills = 0
    started = time.time()
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if system.count(JobState.DONE) >= jobs:
            break
        time.sleep(rng.uniform(0.1, 0.5))
        # Kill only what is doing its work: a consumer that has completed jobs since it
        # started, a manager that holds the leadership. Killed by the clock alone, on a
        # machine where a restart takes a second or more, most victims died before they
        # did anything, and the run slowed to a crawl (123 s on a new machine, 35 s after).
        working = {c.pid for c in system.queue.consumers() if c.jobs_done > 0}
        grown = [i for i, c in enumerate(consumers) if c.pid in working]
        if grown:
            victim = rng.choice(grown)
            kills.append((time.time(), consumers[victim].pid))
            consumers[victim].signal(signal.SIGKILL)
            consumers[victim].wait(10)
            consumers[victim] = system.start("consumer", *CONSUMER_ARGS)
        leader = system.queue.leader(LEADERSHIP)
        leading = leader is not None and pid_of(leader[0]) == manager.pid
        if kill_manager and leading and rng.random() < 0.5:
            manager.signal(signal.SIGKILL)
            manager.wait(10)
            manager_kills += 1
            manager = system.start("manager", *MANAGER_ARGS)
    wait_for(lambda: system.count(JobState.DONE) >= jobs, 60, f"all {jobs} jobs done")
    elapsed = time.time() - started
    system.stop_all(signal.SIGTERM)

    result = audit(system)
    recovery = recovery_times(system, kills)
    print(
        f"\nCHAOS {'manager+consumers' if kill_manager else 'consumers'}: jobs={result.jobs} "
        f"consumer_kills={len(kills)} manager_kills={manager_kills} "
        f"redeliveries={result.redeliveries} duplicate_lines={result.duplicate_lines} "
        f"duplicate_done={result.duplicate_done} elapsed={elapsed:.1f}s "
        f"recovered_jobs={len(recovery)} recovery_s(min/median/max)="
        + (
            f"{min(recovery):.2f}/{statistics.median(recovery):.2f}/{max(recovery):.2f}"
            if recovery
            else "-"
        )
    )
    assert result.problems == []
    assert result.jobs == jobs
    assert result.duplicate_lines == 0 and result.duplicate_done == 0
    assert len(kills) > 0
    assert manager_kills > 0 or not kill_manager


def recovery_times(system: System, kills: list[tuple[float, int]]) -> list[float]:
    """For each job a killed consumer held: seconds from the kill to the job being done."""
    killed_at = {pid: at for at, pid in kills}
    times = []
    before = None
    while True:
        page = system.queue.list_jobs(limit=1000, before_id=before)
        for job in page.jobs:
            if job.attempts < 2:
                continue
            history = system.queue.history(job.id)
            done_at = next(e.at for e in history if e.to_status is JobState.DONE)
            for event in history:
                pid = pid_of(event.actor) if event.action == "claim" else None
                if pid in killed_at and killed_at[pid] < done_at:
                    times.append(done_at - killed_at[pid])
        if page.next_cursor is None:
            return times
        before = page.next_cursor


@pytest.mark.slow
def test_sigkilled_consumers_lose_and_duplicate_nothing(system: System) -> None:
    run_chaos(system, jobs=3000, kill_manager=False, seed=1)


@pytest.mark.slow
def test_sigkilled_manager_and_consumers_lose_and_duplicate_nothing(system: System) -> None:
    run_chaos(system, jobs=2000, kill_manager=True, seed=2)
