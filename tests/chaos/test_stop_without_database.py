"""Stopping with the database gone: SIGTERM takes at most the consumer's grace period and
a few seconds for the manager and the producer, whatever the database is doing, and
nothing is lost by it (issue 14 §4).

The database goes away three ways: a PostgreSQL server stopped, a PostgreSQL server
paused (SIGSTOP: connections hang instead of failing), and a SQLite database on a
filesystem that hangs (the FaultFS server paused, so every file operation blocks).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pqcore import JobState, open_queue
from services.common.signals import STOP_SECONDS
from tests.backends import BackendHandle, sqlite_backend
from tests.pg import PostgresCluster, find_binaries
from tests.powerloss.conftest import require_fuse
from tests.powerloss.faultfs import FaultFS
from tests.services.system import System, completion_lines
from tests.support import main_thread_waits_on_fuse, wait_for

GRACE = 4.0
SLACK = 1.5  # process exit and the test's own polling
HANDLERS = {"PQ_HANDLER_MODULES": "tests.services.handlers_for_tests"}


def postgres_processes(cluster: PostgresCluster) -> list[int]:
    """The postmaster and every backend and helper process it started."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    children = subprocess.run(
        ["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [postmaster, *map(int, children)]


@pytest.fixture(scope="module")
def private_cluster() -> Iterator[PostgresCluster]:
    """A server of this module's own: the other tests share one that must stay up."""
    from tests.conftest import require

    bin_dir = find_binaries()
    require(bin_dir is not None, "PostgreSQL server binaries (initdb, pg_ctl) missing")
    assert bin_dir is not None
    cluster = PostgresCluster(bin_dir).start()
    try:
        yield cluster
    finally:
        for pid in (
            postgres_processes(cluster) if (cluster.data / "postmaster.pid").exists() else []
        ):
            os.kill(pid, signal.SIGCONT)
        cluster.stop()


def system_on(cluster: PostgresCluster, tmp_path: Path) -> System:
    """The test's processes on a fresh database of the private server."""
    url = cluster.url(cluster.create_database())
    return System(tmp_path, BackendHandle("postgresql", url, lambda **kw: open_queue(url)))


def restart(cluster: PostgresCluster) -> None:
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={cluster.port}"
        f" -c unix_socket_directories={cluster.sockets} -c max_connections=200"
    )
    cluster._run(
        "pg_ctl", "-D", str(cluster.data), "-l", str(cluster.root / "server.log"),
        "-o", options, "-w", "-t", "60", "start",
    )  # fmt: skip


def running_system(system: System) -> int:
    """A consumer holding a long job, a manager and a producer, all busy; the job's id."""
    path = system.write_job_file("long.txt")
    job_id = system.queue.enqueue(f"slow:12:{path.name}").id  # longer than GRACE
    system.start("consumer", "--lease", 6, "--grace", GRACE, **HANDLERS)
    system.start("manager", "--rescue-interval", 0.5, "--leader-ttl", 3)
    system.start("producer", "--interval", 0.2)
    wait_for(
        lambda: system.queue.get(job_id).status is JobState.PROCESSING, 60, "the long job held"
    )
    time.sleep(1)  # every service past its start-up, in its loop
    return job_id


def stop_all_timed(system: System) -> dict[str, float]:
    """SIGTERM every process at once; the seconds each took to exit."""
    asked = time.monotonic()
    for proc in system.procs:
        proc.signal(signal.SIGTERM)
    took: dict[str, float] = {}
    deadline = asked + GRACE + STOP_SECONDS + 20
    while len(took) < len(system.procs) and time.monotonic() < deadline:
        for proc in system.procs:
            if proc.role not in took and not proc.alive():
                took[proc.role] = time.monotonic() - asked
        time.sleep(0.05)
    for proc in system.procs:
        assert not proc.alive(), f"{proc.role} still running after {deadline - asked:.0f}s"
    print(f"\nSTOP without database: {', '.join(f'{r} {s:.1f}s' for r, s in took.items())}")
    return took


def assert_bounded(took: dict[str, float]) -> None:
    assert took["consumer"] <= GRACE + SLACK, took
    assert took["manager"] <= STOP_SECONDS + SLACK, took
    assert took["producer"] <= STOP_SECONDS + SLACK, took


def assert_nothing_lost(system: System, job_id: int) -> None:
    """Back up: the held job is rescued once its lease expires and runs to done once."""
    system.procs[:] = [p for p in system.procs if p.alive()]
    system.start("manager", "--rescue-interval", 0.5, "--leader-ttl", 3)
    system.start("consumer", "--lease", 6, "--work-min", 0, "--work-max", 0, **HANDLERS)
    wait_for(lambda: system.queue.get(job_id).status is JobState.DONE, 60, "the held job done")
    assert completion_lines(system.jobs_dir / "long.txt") == [job_id]
    system.stop_all(signal.SIGTERM)
    result = system.doctor()
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_stop_is_bounded_while_postgresql_is_stopped(
    tmp_path: Path, private_cluster: PostgresCluster
) -> None:
    cluster = private_cluster
    system = system_on(cluster, tmp_path)
    try:
        job_id = running_system(system)
        cluster._run("pg_ctl", "-D", str(cluster.data), "-m", "immediate", "-w", "stop")
        assert_bounded(stop_all_timed(system))
        # A consumer started during the outage waits for the database, not crash-loops.
        system.procs.clear()
        early = system.start("consumer", "--lease", 6, **HANDLERS)
        wait_for(lambda: "cannot open the queue yet" in early.text(), 30, "the consumer waiting")
        assert early.alive()
        restart(cluster)
        wait_for(
            lambda: any(c.pid == early.pid for c in system.queue.consumers()), 30, "registered"
        )
        assert_nothing_lost(system, job_id)
    finally:
        system.stop_all()
        if not (cluster.data / "postmaster.pid").exists():
            restart(cluster)  # for the module's next test


@pytest.mark.slow
def test_stop_is_bounded_while_postgresql_is_paused(
    tmp_path: Path, private_cluster: PostgresCluster
) -> None:
    cluster = private_cluster
    system = system_on(cluster, tmp_path)
    paused = []
    try:
        running_system(system)
        paused = postgres_processes(cluster)
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
        assert_bounded(stop_all_timed(system))
    finally:
        for pid in paused:
            os.kill(pid, signal.SIGCONT)
        system.stop_all()


def wait_on_disk(system: System, roles: tuple[str, ...], seconds: float) -> dict[str, str]:
    """Up to ``seconds``, until the main thread of each role waits on the FUSE server;
    where each main thread then sleeps in the kernel (``/proc/<pid>/wchan``)."""
    procs = [proc for proc in system.procs if proc.role in roles]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(main_thread_waits_on_fuse(proc.pid) for proc in procs):
            break
        time.sleep(0.05)
    return {proc.role: Path(f"/proc/{proc.pid}/wchan").read_text() for proc in procs}


def gave_up_in_time(system: System) -> dict[str, float]:
    """SIGTERM every process; the seconds until each logged that it exits at once (the
    stop deadline) or exited. A process blocked in a request to a hung FUSE server
    cannot exit until the server answers — not even SIGKILL ends it (the kernel waits
    out a request the server has already read) — so on a hung disk the deadline can
    only stop everything else and wait for that one call."""
    asked = time.monotonic()
    for proc in system.procs:
        proc.signal(signal.SIGTERM)
    took: dict[str, float] = {}
    deadline = asked + GRACE + STOP_SECONDS + 20
    while len(took) < len(system.procs) and time.monotonic() < deadline:
        for proc in system.procs:
            if proc.role not in took and (not proc.alive() or "exiting now" in proc.text()):
                took[proc.role] = time.monotonic() - asked
        time.sleep(0.05)
    print(f"\nSTOP on a hung disk: {', '.join(f'{r} {s:.1f}s' for r, s in took.items())}")
    return took


@pytest.mark.slow
def test_stop_is_bounded_while_the_sqlite_disk_hangs(tmp_path: Path) -> None:
    require_fuse()
    root = Path(f"/tmp/pqstop-{os.getpid()}")
    fs = FaultFS(root, seed=7)
    fs.mount()
    try:
        with sqlite_backend(fs.mountpoint) as handle:
            system = System(tmp_path, handle)
            try:
                job_id = running_system(system)
                assert fs.proc is not None
                os.kill(fs.proc.pid, signal.SIGSTOP)  # every file operation now blocks
                try:
                    # The hard case, as often as it can be had: SIGTERM finds the manager's
                    # and the producer's main threads inside a request to the paused disk.
                    # Not asserted: on a loaded machine the producer once had not got there
                    # within 30 s. The wait is printed; tests/services/test_stop_deadline.py
                    # pins the hard case itself.
                    blocked = wait_on_disk(system, ("manager", "producer"), seconds=15)
                    print(f"\nmain threads wait in: {blocked}")
                    assert_bounded(gave_up_in_time(system))
                finally:
                    os.kill(fs.proc.pid, signal.SIGCONT)
                # The disk answers again: each process finishes the one call it was
                # blocked in and is gone at once, trying nothing more.
                resumed = time.monotonic()
                for proc in system.procs:
                    proc.wait(10)
                print(f"exited {time.monotonic() - resumed:.1f}s after the disk answered")
                assert time.monotonic() - resumed < 5
                assert_nothing_lost(system, job_id)
            finally:
                system.stop_all()
    finally:
        fs.unmount()
