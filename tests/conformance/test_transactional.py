"""Enqueue and completion inside the caller's own transaction, on a connection of the
caller's (sqlite3 / psycopg): the job exists, and a completion holds, if and only if that
transaction commits; a fenced lease holder's transaction can never commit."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import pqcore as pq
from pqcore import InvalidArgument, JobState, LeaseLost, Queue
from tests.backends import BackendHandle, FakeClock
from tests.conformance.helpers import claim_one, snapshot, token


class AppTable:
    """The caller's own table in the queue's database, written with the caller's SQL."""

    def __init__(self, backend: str, conn: Any) -> None:
        self.sqlite = backend == "sqlite"
        self.conn = conn
        self.mark = "?" if self.sqlite else "%s"
        with self.transaction():
            self.conn.execute("CREATE TABLE IF NOT EXISTS ledger (job_id INTEGER, note TEXT)")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self.sqlite:
            with self.conn:  # commits, or rolls back on an exception
                yield
        else:
            with self.conn.transaction():
                yield

    def write(self, job_id: int, note: str) -> None:
        self.conn.execute(f"INSERT INTO ledger VALUES ({self.mark}, {self.mark})", (job_id, note))

    def rows(self) -> list[tuple[int, str]]:
        rows = self.conn.execute("SELECT job_id, note FROM ledger ORDER BY job_id").fetchall()
        if not self.sqlite:
            self.conn.rollback()
        return [tuple(r) for r in rows]  # type: ignore[misc]


@pytest.fixture
def app(queue: Queue) -> Iterator[pq.App]:
    yield pq.App(queue)


@pytest.fixture
def table(backend: BackendHandle, app: pq.App) -> Iterator[AppTable]:
    conn = app.connect()
    yield AppTable(backend.name, conn)
    conn.close()


def test_the_job_exists_only_once_the_callers_transaction_commits(
    queue: Queue, table: AppTable, make_queue: Any
) -> None:
    elsewhere = make_queue()
    with table.transaction():
        table.write(1, "user created")
        job = queue.enqueue("welcome", connection=table.conn)
        more = queue.enqueue_many(["a", "b"], connection=table.conn)
        assert elsewhere.count_jobs() == 0  # not visible before the commit
        if not table.sqlite:  # (SQLite: the caller's transaction holds the write lock)
            assert elsewhere.claim("c") == []
    assert [j.data for j in elsewhere.list_jobs(oldest_first=True).jobs] == ["welcome", "a", "b"]
    assert elsewhere.get(job.id).status is JobState.PENDING and len(more) == 2
    assert table.rows() == [(1, "user created")]


def test_a_rollback_leaves_neither_the_job_nor_the_callers_writes(
    queue: Queue, table: AppTable
) -> None:
    before = snapshot(queue)
    with pytest.raises(RuntimeError, match="changed my mind"), table.transaction():
        table.write(1, "user created")
        dep = queue.enqueue("first", connection=table.conn)
        queue.enqueue("second", after=[dep], connection=table.conn)  # dependencies too
        raise RuntimeError("changed my mind")
    assert snapshot(queue) == before and table.rows() == []
    assert queue.doctor() == []


def test_bad_input_leaves_the_callers_transaction_as_it_was(queue: Queue, table: AppTable) -> None:
    with table.transaction():
        table.write(1, "kept")
        queue.enqueue("kept job", connection=table.conn)
        with pytest.raises(InvalidArgument, match="do not exist"):
            queue.enqueue_many(["dropped", pq.EnqueueRequest("x", after=(999,))],
                               connection=table.conn)  # fmt: skip
        with pytest.raises(InvalidArgument, match="payload is empty"):
            queue.enqueue(" ", connection=table.conn)
        table.write(2, "still usable")
    assert [j.data for j in queue.list_jobs().jobs] == ["kept job"]
    assert table.rows() == [(1, "kept"), (2, "still usable")]


def test_connections_that_cannot_carry_the_job_are_refused(
    backend: BackendHandle, queue: Queue, tmp_path: Any
) -> None:
    before = snapshot(queue)
    with pytest.raises(InvalidArgument, match="takes a"):
        queue.enqueue("x", connection=object())
    if backend.name == "sqlite":
        other = sqlite3.connect(tmp_path / "other.db")
        with pytest.raises(InvalidArgument, match="not to the queue's database"):
            queue.enqueue("x", connection=other)
        autocommit = sqlite3.connect(backend.url, isolation_level=None)
    else:
        import psycopg

        from tests.pg import cluster

        with (
            cluster().database("other") as url,
            psycopg.connect(url) as other,
            pytest.raises(InvalidArgument, match="not to the queue's database"),
        ):
            queue.enqueue("x", connection=other)
        autocommit = psycopg.connect(backend.url, autocommit=True)
    with pytest.raises(InvalidArgument, match="autocommit mode with no transaction open"):
        queue.enqueue("x", connection=autocommit)
    autocommit.close()
    assert snapshot(queue) == before


def test_completion_commits_with_the_callers_writes_or_not_at_all(
    queue: Queue, table: AppTable
) -> None:
    kept, undone = queue.enqueue("kept"), queue.enqueue("undone")
    held = {j.data: j for j in queue.claim("c", limit=2)}
    with table.transaction():
        table.write(kept.id, "charged")
        queue.complete(kept.id, token(held["kept"]), result={"ok": 1}, connection=table.conn)
        assert queue.get(kept.id).status is JobState.PROCESSING  # until the commit
    with pytest.raises(RuntimeError), table.transaction():
        table.write(undone.id, "charged")
        queue.complete(undone.id, token(held["undone"]), connection=table.conn)
        raise RuntimeError("crash before the commit")
    assert queue.get(kept.id).status is JobState.DONE
    assert queue.get(kept.id).result_value() == {"ok": 1}
    assert queue.get(undone.id).status is JobState.PROCESSING  # still held: a retry will run
    assert table.rows() == [(kept.id, "charged")]
    queue.complete(undone.id, token(held["undone"]))


def test_a_fenced_zombie_cannot_commit_its_writes(
    queue: Queue, table: AppTable, clock: FakeClock
) -> None:
    """The lease expired, the manager rescued the job and another consumer holds it: the
    zombie's completion raises LeaseLost, and its writes can never commit, even if it
    swallows the error and commits. (SQLite rolls the transaction back at once, so what a
    caller writes after that is a transaction of its own; PostgreSQL's stays aborted.)"""
    job = queue.enqueue("charge card")
    zombie = claim_one(queue, "zombie", lease_seconds=5)
    clock.advance(10)
    queue.rescue_expired()
    successor = claim_one(queue, "successor")
    table.conn.execute("SELECT 1")  # an open transaction (psycopg begins one)
    table.write(job.id, "charged by the zombie")
    with pytest.raises(LeaseLost):
        queue.complete(job.id, token(zombie), connection=table.conn)
    if table.sqlite:
        assert not table.conn.in_transaction
        table.conn.commit()  # a caller that ignores the error and commits anyway
    else:
        with pytest.raises(Exception, match="current transaction is aborted"):
            table.write(job.id, "and again")
        table.conn.commit()  # the server turns it into a rollback
    assert table.rows() == []
    with table.transaction():  # the successor does it once
        table.write(job.id, "charged")
        queue.complete(job.id, token(successor), connection=table.conn)
    assert table.rows() == [(job.id, "charged")]
    assert [e.action for e in queue.history(job.id)].count("complete") == 1


def test_a_task_completes_in_its_own_transaction(queue: Queue, app: pq.App) -> None:
    @app.task(name="transactional.charge", context=True, queue="tx")
    def charge(ctx: pq.TaskContext, amount: int) -> None:
        conn = app.connect()
        try:
            table = AppTable(queue.backend, conn)
            with table.transaction():
                table.write(ctx.job_id, f"charged {amount}")
                ctx.complete_in(conn, result={"charged": amount})
        finally:
            conn.close()

    handle = charge.enqueue(12)
    assert app.work(queues=["tx"]) == 1
    assert handle.wait(timeout=1) == {"charged": 12}
    assert [e.action for e in queue.history(handle.id)].count("complete") == 1


def test_consumers_hear_of_a_job_committed_on_the_callers_connection(
    backend: BackendHandle, make_queue: Any, table: AppTable
) -> None:
    """PostgreSQL's NOTIFY is part of the caller's transaction: waiters wake at its commit.
    SQLite's doorbell cannot hear that commit: Queue.wake() rings it (else waiters find the
    job at their next re-check)."""
    waiter, producer = make_queue(), make_queue()
    woke: list[float] = []
    threading.Thread(target=lambda: woke.append(float(waiter.wait_for_jobs(10)))).start()
    time.sleep(0.3)
    with table.transaction():
        producer.enqueue("hello", connection=table.conn)
    committed = time.monotonic()
    if backend.name == "sqlite":
        producer.wake()
    deadline = time.monotonic() + 5
    while not woke and time.monotonic() < deadline:
        time.sleep(0.005)
    assert woke == [1.0]
    assert time.monotonic() - committed < 0.9  # not the re-check: the wake-up
