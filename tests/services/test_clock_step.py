"""A wall-clock step of +1 hour on the one host of a SQLite queue, while jobs run.

On SQLite every process of one database file runs on one host and takes its time from
it: an NTP correction or a VM resumed from a pause moves every process's clock at once,
and every lease written before the step (by the host's clock, an hour ago) looks an hour
overdue. The real consumers and manager run here under libfaketime with one shared
offset file, the host's clock: the test writes ``+3600s`` into it while the consumers
hold jobs. Every process reads the file on each clock call (``FAKETIME_NO_CACHE``), so
the step reaches all of them at the same instant; the monotonic clock stays true, as a
real step leaves it.

The manager takes a lease found expired back only if a second look, half that lease later
on its monotonic clock, finds it unrenewed (``pqcore.rescue.ConfirmedRescue``); each
consumer heartbeats every lease/3, so by then every lease was renewed from the new time:
no job is rescued, and all are done exactly once. (PostgreSQL, where the clock is the
server's: tests/containers/test_postgres.py steps the database host's clock the same way.)
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pqcore import JobState
from tests.backends import sqlite_backend
from tests.conftest import require
from tests.services.system import System, audit
from tests.support import wait_for

LEASE = 3.0  # heartbeats every second
CONSUMER_ARGS = ("--work-min", 2, "--work-max", 3, "--lease", LEASE, "--grace", 1)
MANAGER_ARGS = ("--rescue-interval", 0.3, "--check-interval", 1, "--leader-ttl", 3)
JOBS = 18


def libfaketime() -> Path:
    spec = importlib.util.find_spec("libfaketime")
    require(spec is not None, "the libfaketime package is missing (make setup: the dev extra)")
    assert spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / "vendor/libfaketime/src/libfaketime.so.1"
    assert path.is_file(), path
    return path


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[System, Path]]:
    """A System on SQLite whose processes share one faked host clock (its offset file)."""
    with sqlite_backend(tmp_path) as backend:
        system = System(tmp_path, backend)
        clock = tmp_path / "host-clock-offset"
        clock.write_text("+0s\n")
        yield system, clock
        system.stop_all()


def test_a_host_clock_step_rescues_no_job_of_a_live_holder(host: tuple[System, Path]) -> None:
    system, clock = host
    faked = {
        "LD_PRELOAD": str(libfaketime()),
        "FAKETIME_TIMESTAMP_FILE": str(clock),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    queue = system.queue
    for i in range(JOBS):
        queue.enqueue(system.write_job_file(f"job-{i:03}.txt").name)
    system.start("manager", *MANAGER_ARGS, **faked)
    for _ in range(3):
        system.start("consumer", *CONSUMER_ARGS, **faked)

    def running() -> int:
        return queue.stats().counts[JobState.PROCESSING.value]

    wait_for(lambda: running() == 3, 30, "three jobs held")
    time.sleep(LEASE / 3 + 0.5)  # every holder has renewed at least once: live leases
    before = time.time()
    clock.write_text("+3600s\n")  # the host's clock steps an hour forward
    held = [j.id for j in queue.list_jobs(limit=100).jobs if j.status is JobState.PROCESSING]
    assert len(held) == 3, held

    wait_for(lambda: queue.stats().counts[JobState.DONE.value] == JOBS, 120, "every job done")
    result = audit(system)
    assert result.problems == [], result.problems
    assert result.redeliveries == 0 and result.duplicate_lines == 0 and result.duplicate_done == 0
    for job_id in range(1, JOBS + 1):
        actions = [e.action for e in queue.history(job_id)]
        assert "rescue" not in actions, (job_id, actions)
    # The step really happened to the services: the leases they wrote after it, and the
    # completions, carry the host's stepped time.
    finished = [
        e.at for j in range(1, JOBS + 1) for e in queue.history(j) if e.action == "complete"
    ]
    assert max(finished) > before + 3000, "the services' clock never stepped"
