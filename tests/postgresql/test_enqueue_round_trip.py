"""One plain enqueue on PostgreSQL is one statement, with its wake-up inside it; and
because that statement commits by itself, a connection lost while it runs is reported
as an outcome unknown instead of being run again (it could enqueue the job twice)."""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pqcore import OutcomeUnknown, Queue, open_queue
from pqcore.drivers.postgresql import PostgresDriver
from tests.conftest import pq_command
from tests.support import wait_for


@pytest.fixture
def queue(pg_url: str) -> Iterator[Queue]:
    with open_queue(pg_url) as queue:
        queue.enqueue("warm-up", queue="warm-up")  # the pool and the runtime settings
        yield queue


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[bytes | str]:
    """Every statement this process sends on any psycopg connection, from now on."""
    sent: list[bytes | str] = []
    execute = psycopg.Connection.execute

    def counting(self: psycopg.Connection[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(query)
        return execute(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", counting)
    return sent


def test_a_plain_enqueue_is_one_statement_that_wakes_its_queue(
    queue: Queue, pg_url: str, statements: list[bytes | str]
) -> None:
    listener = psycopg.connect(pg_url, autocommit=True)
    listener.execute("LISTEN pq_jobs")  # armed before the enqueue: a NOTIFY cannot be early
    statements.clear()
    job = queue.enqueue("report.txt", queue="reports")
    assert len(statements) == 1, statements  # no BEGIN, no NOTIFY, no COMMIT of its own
    payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert payloads == ["reports"]
    listener.close()
    assert queue.get(job.id).data == "report.txt"


def test_other_enqueues_still_notify_each_queue_once(queue: Queue, pg_url: str) -> None:
    listener = psycopg.connect(pg_url, autocommit=True)
    listener.execute("LISTEN pq_jobs")
    queue.enqueue("a", queue="keyed", dedupe_key="a")  # a transaction: its NOTIFY at the end
    queue.enqueue_many(["b", "c"], actor="t")  # the bulk path, queue "default"
    payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=2)]
    assert payloads == ["keyed", "default"]
    assert list(listener.notifies(timeout=0.3)) == []  # nothing twice
    listener.close()


def blocked_insert_pid(pg_url: str) -> int:
    """The server process of an INSERT INTO jobs waiting for a lock."""
    with psycopg.connect(pg_url, autocommit=True) as conn:

        def waiting() -> int | None:
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%INSERT INTO jobs%'"
            ).fetchone()
            return row[0] if row else None

        return wait_for(waiting, timeout=10, what="an enqueue waiting on the table lock")


def enqueue_while_its_connection_is_cut(pg_url: str, enqueue: Any) -> BaseException | None:
    """Run ``enqueue`` while the jobs table is locked, terminate its server process
    mid-statement, then let go of the lock. Returns what it raised (None: nothing)."""
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            enqueue()
            raised.append(None)
        except BaseException as error:  # handed to the test
            raised.append(error)

    with psycopg.connect(pg_url) as locker:
        locker.execute("LOCK TABLE jobs IN SHARE MODE")  # an INSERT waits for it
        thread = threading.Thread(target=run)
        thread.start()
        pid = blocked_insert_pid(pg_url)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        time.sleep(0.3)  # a repeat on a fresh connection would now wait for the lock too
    thread.join(15)
    assert not thread.is_alive()
    return raised[0]


def job_count(pg_url: str) -> int:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*) FROM jobs WHERE queue <> 'warm-up'").fetchone()
        return int(row[0]) if row else 0


def test_a_plain_enqueue_cut_mid_statement_is_reported_not_repeated(
    queue: Queue, pg_url: str
) -> None:
    error = enqueue_while_its_connection_is_cut(pg_url, lambda: queue.enqueue("once.txt"))
    assert isinstance(error, OutcomeUnknown), error
    assert "may or may not have been applied" in str(error)
    assert job_count(pg_url) == 0  # here it was not; a silent repeat would have made one
    assert queue.enqueue("next.txt").data == "next.txt"  # the queue works on
    assert queue.doctor() == []


def test_the_pq_command_says_what_to_do_when_the_job_may_or_may_not_exist(
    queue: Queue, pg_url: str
) -> None:
    ran: list[subprocess.CompletedProcess[str]] = []
    command = [*pq_command(), "--db", pg_url, "enqueue", "report 7.txt", "--queue", "reports"]
    enqueue_while_its_connection_is_cut(
        pg_url,
        lambda: ran.append(subprocess.run(command, capture_output=True, text=True, timeout=60)),
    )
    assert ran and ran[0].returncode != 0 and ran[0].stdout == ""
    assert "may or may not have been applied" in ran[0].stderr
    assert "pq list --queue reports --search 'report 7.txt'" in ran[0].stderr  # copy-pasteable
    assert job_count(pg_url) == 0


def test_a_transactional_enqueue_cut_before_commit_is_repeated_safely(
    queue: Queue, pg_url: str
) -> None:
    error = enqueue_while_its_connection_is_cut(pg_url, lambda: queue.enqueue_many(["a", "b"]))
    assert error is None  # nothing had committed: run again on a fresh connection
    assert job_count(pg_url) == 2
    assert queue.doctor() == []


def test_a_plain_enqueue_after_the_server_ended_idle_connections_just_works(
    queue: Queue, pg_url: str
) -> None:
    """After a restart or pg_terminate_backend every pooled connection is dead; the
    pool's check notices that from the socket and replaces them, so the one-statement
    enqueue is not sent on a dead connection (it would have to report an unknown
    outcome)."""
    with psycopg.connect(pg_url, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert ended is not None and ended[0] >= 1
    time.sleep(0.3)  # the server's goodbye reaches the sockets
    for n in range(5):
        assert queue.enqueue(f"after-{n}.txt").data == f"after-{n}.txt"
    assert job_count(pg_url) == 5


def test_the_pool_check_works_for_a_process_with_many_open_files(pg_url: str) -> None:
    """Connections whose descriptors are past 1024 (a busy application): select() would
    refuse them, and every checkout would fail its check."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 1200
    if hard != resource.RLIM_INFINITY and hard < wanted + 100:
        pytest.skip(f"the hard limit of open files is {hard}")  # never so low here or in CI
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted + 100), hard))
    held = [os.open("/dev/null", os.O_RDONLY) for _ in range(wanted)]
    try:
        with open_queue(pg_url) as queue:
            driver = queue.driver
            assert isinstance(driver, PostgresDriver)
            with driver.pool().connection() as conn:  # a checkout: the check ran on it
                assert conn.fileno() > 1024
            for n in range(3):
                assert queue.enqueue(f"many-{n}.txt").data == f"many-{n}.txt"
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
