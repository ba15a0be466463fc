"""SIGKILL at every step of a task that writes to the application's tables and completes
its job in the same transaction: each kill leaves both the writes and ``done``, or
neither. A fenced zombie (SIGSTOPped, rescued, continued) cannot commit. A process killed
between a transactional enqueue and its commit leaves no job.

Children are forked by a zygote (tests/integration/txchild.py), so a kill costs
milliseconds; the kill points are markers the task prints, where it waits to be killed.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pqcore import JobNotFound, JobState, Queue
from tests.backends import BackendHandle
from tests.conftest import ROOT
from tests.integration import txchild
from tests.support import wait_for

pytestmark = pytest.mark.integration

BEFORE_COMMIT = ("claimed", "started", "wrote-1", "wrote-2", "completed-in")
AFTER_COMMIT = ("committed", "returned")
JOBS = 18  # x 6 kills each, per backend


class Zygote:
    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.txchild", url],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0,
        )  # fmt: skip
        self.buffer = b""
        self.lines: list[str] = []
        self.expect(lambda line: line == "ready")

    def start(self, command: str, kill_at: str) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{command} {kill_at}\n".encode())
        self.proc.stdin.flush()
        return int(self.expect(lambda line: line.startswith("child ")).split()[1])

    def expect(self, wanted: Any, timeout: float = 20.0) -> str:
        """The first line (read now or kept from before) that ``wanted`` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            for i, line in enumerate(self.lines):
                if wanted(line):
                    del self.lines[i]
                    return line
                if line.startswith("crash "):
                    raise AssertionError(line)
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"timed out; lines: {self.lines[-10:]}"
            assert self.proc.stdout is not None
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                assert chunk, f"zygote exited: {self.buffer!r} {self.lines[-10:]}"
                self.buffer += chunk
                *complete, self.buffer = self.buffer.split(b"\n")
                self.lines += [c.decode() for c in complete]

    def at(self, pid: int, step: str) -> None:
        self.expect(lambda line: line == f"at {pid} {step}")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return  # dead and reaped (the zygote ignores SIGCHLD)
        time.sleep(0.001)
    raise AssertionError(f"child {pid} survived SIGKILL")


def rescue(queue: Queue, job_id: int) -> None:
    """Rescue the job, as the manager's next rounds would: on PostgreSQL its row stays
    locked (and is skipped) until the server has noticed that the killed child is gone."""
    wait_for(lambda: [j.id for j in queue.rescue_expired()] == [job_id], 10, "the rescue",
             interval=0.002)  # fmt: skip


def stopped(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"


class Ledger:
    """The application's tables, read with the application's SQL."""

    def __init__(self, backend: BackendHandle) -> None:
        self.mark = "?" if backend.name == "sqlite" else "%s"
        if backend.name == "sqlite":
            import sqlite3

            self.conn: Any = sqlite3.connect(backend.url, timeout=10)
        else:
            import psycopg

            self.conn = psycopg.connect(backend.url)
        txchild.create_tables(self.conn, backend.name)
        # Each read sees what is committed now.
        if backend.name == "sqlite":
            self.conn.isolation_level = None
        else:
            self.conn.autocommit = True

    def rows(self, job_id: int) -> int:
        sql = f"SELECT count(*) FROM ledger WHERE job_id = {self.mark}"
        return int(self.conn.execute(sql, (job_id,)).fetchone()[0])

    def balanced(self) -> bool:
        total = self.conn.execute("SELECT n FROM totals WHERE id = 1").fetchone()[0]
        moved = self.conn.execute("SELECT coalesce(sum(amount), 0) FROM ledger").fetchone()[0]
        return int(total) == int(moved)


def both_or_neither(queue: Queue, ledger: Ledger, job_id: int) -> bool:
    """The job's writes and its completion: both there, or neither. Returns done."""
    done = queue.get(job_id).status is JobState.DONE
    rows = ledger.rows(job_id)
    assert rows == (1 if done else 0), f"job {job_id}: done={done} but {rows} ledger rows"
    assert ledger.balanced()
    return done


@pytest.fixture
def setup(backend: BackendHandle) -> Any:
    queue = backend.make()
    txchild.app.use(queue)
    ledger = Ledger(backend)
    zygote = Zygote(backend.url)
    yield queue, ledger, zygote
    zygote.close()
    txchild.app.use(None)


def test_sigkill_at_every_step_leaves_the_writes_and_done_or_neither(
    backend: BackendHandle, setup: Any
) -> None:
    queue, ledger, zygote = setup
    started = time.monotonic()
    kills: dict[str, int] = {}
    jobs = []
    for n in range(JOBS):
        job = txchild.transfer.options(max_attempts=20).enqueue(n + 1)
        jobs.append(job.id)
        for step in (*BEFORE_COMMIT, AFTER_COMMIT[n % 2]):
            pid = zygote.start("run", step)
            zygote.at(pid, step)
            kill(pid)
            kills[step] = kills.get(step, 0) + 1
            done = both_or_neither(queue, ledger, job.id)
            assert done == (step in AFTER_COMMIT), step
            if not done:  # the manager takes the dead child's job back
                rescue(queue, job.id)
    for job_id in jobs:
        assert both_or_neither(queue, ledger, job_id)
        history = queue.history(job_id)
        assert [e.action for e in history].count("complete") == 1
        assert [e.action for e in history].count("claim") == 6
        assert queue.get(job_id).result_value() == {"moved": jobs.index(job_id) + 1}
    assert queue.doctor() == []
    total = sum(kills.values())
    print(
        f"\nTRANSACTIONAL COMPLETION {backend.name}: kills={total} per step={kills} "
        f"jobs={JOBS} every kill left both or neither; {time.monotonic() - started:.1f}s"
    )
    assert total >= 100


def test_a_fenced_zombie_child_cannot_commit(backend: BackendHandle, setup: Any) -> None:
    """SQLite's zombie stops before its transaction (it would hold the write lock every
    other process waits for); PostgreSQL's stops with its first write in flight."""
    queue, ledger, zygote = setup
    job = txchild.transfer.enqueue(5)
    step = "started" if backend.name == "sqlite" else "wrote-1"
    zombie = zygote.start("run", f"stop:{step}")
    zygote.at(zombie, step)
    deadline = time.monotonic() + 10
    while not stopped(zombie):
        assert time.monotonic() < deadline
        time.sleep(0.005)
    rescue(queue, job.id)
    successor = zygote.start("run", "none")
    zygote.expect(lambda line: line.startswith(f"end {successor} {job.id} completed_in"))
    assert both_or_neither(queue, ledger, job.id)
    os.kill(zombie, signal.SIGCONT)
    lost = zygote.expect(lambda line: line.startswith(f"end {zombie} {job.id} "))
    assert lost.split()[3] == "lost", lost
    assert both_or_neither(queue, ledger, job.id) and ledger.rows(job.id) == 1
    assert [e.action for e in queue.history(job.id)].count("complete") == 1
    assert queue.doctor() == []


def test_a_process_killed_before_its_commit_leaves_no_job(
    backend: BackendHandle, setup: Any
) -> None:
    queue, ledger, zygote = setup
    for kill_at, exists in (("enqueued", False), ("committed", True)) * 5:
        pid = zygote.start("enqueue", kill_at)
        prefix = f"enqueued {pid} "
        job_id = int(zygote.expect(lambda line, p=prefix: line.startswith(p)).split()[2])
        zygote.at(pid, kill_at)
        kill(pid)
        try:
            found = queue.get(job_id).status is JobState.PENDING
        except JobNotFound:
            found = False
        assert found == exists, (kill_at, job_id)
    assert queue.stats().total == 5 and ledger.rows(0) == 5  # the job and its write, or neither
    assert queue.doctor() == []
