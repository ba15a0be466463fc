"""Every way the server can fail us ends in one clear pqcore error, and nothing is lost.

The failures are real: a port nobody listens on, a wrong password, a missing database,
a read-only database, a killed connection. Errors that cannot be provoked on demand
(serialization failure, deadlock, disk full) are raised by the real server with their
real SQLSTATE, which is what the translation looks at.
"""

from __future__ import annotations

import psycopg
import pytest

from pqcore import JobState, Queue, QueueSettings, open_queue
from pqcore.driver import Session
from pqcore.drivers.pg_listen import Connection
from pqcore.drivers.postgresql import PostgresDriver, PostgresSession
from pqcore.exceptions import (
    DatabaseBusy,
    DatabaseNotFound,
    DatabaseReadOnly,
    DatabaseUnavailable,
    DiskFull,
)
from tests.pg import PASSWORD, PostgresCluster
from tests.support import free_port


def raise_sqlstate(session: Session | Connection, code: str) -> None:
    conn = session.conn if isinstance(session, PostgresSession) else session
    assert not isinstance(conn, Session)
    conn.execute(f"DO $$ BEGIN RAISE EXCEPTION 'provoked' USING ERRCODE = '{code}'; END $$")


def test_open_queue_picks_postgresql_by_url(pg_url: str) -> None:
    with open_queue(pg_url) as queue:
        assert isinstance(queue, Queue)
        assert queue.enqueue("jobs/1.txt").status is JobState.PENDING


def test_connection_refused_is_reported_as_unavailable() -> None:
    url = f"postgresql://pq:x@127.0.0.1:{free_port()}/pq"
    with pytest.raises(DatabaseUnavailable, match="connection refused") as caught:
        open_queue(url)
    assert "x@" not in str(caught.value)  # the password never reaches a message


def test_wrong_password_is_reported_as_refused_login(pg: PostgresCluster, pg_url: str) -> None:
    url = pg_url.replace(f":{PASSWORD}@", ":wrong@")
    with pytest.raises(DatabaseUnavailable, match="refused the login"):
        open_queue(url)


def test_missing_database_is_reported_as_not_found(pg: PostgresCluster) -> None:
    with pytest.raises(DatabaseNotFound, match=r"no database at .*/no_such_db"):
        open_queue(pg.url("no_such_db"))


def test_read_only_database_refuses_writes_and_keeps_its_jobs(
    pg: PostgresCluster, pg_url: str
) -> None:
    with open_queue(pg_url) as queue:
        queue.enqueue("jobs/1.txt")
    database = pg_url.rsplit("/", 1)[1]
    pg.admin(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on')
    with open_queue(pg_url) as queue:
        with pytest.raises(DatabaseReadOnly, match=r"is read-only .*nothing was changed"):
            queue.enqueue("jobs/2.txt")
        with pytest.raises(DatabaseReadOnly):
            queue.claim("c1")
        assert queue.stats().counts["pending"] == 1  # reads still work


def test_serialization_failures_are_retried_whole(pg_url: str) -> None:
    db = PostgresDriver(pg_url, QueueSettings(db=pg_url, busy_retries=3))
    attempts = []

    def body(conn: Session) -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise_sqlstate(conn, "40001" if len(attempts) == 1 else "40P01")  # then a deadlock
        return "applied"

    try:
        assert db.write(body) == "applied"
        assert len(attempts) == 3
    finally:
        db.close()


def test_endless_serialization_failures_end_in_database_busy(pg_url: str) -> None:
    db = PostgresDriver(pg_url, QueueSettings(db=pg_url, busy_retries=2))
    attempts = []

    def body(conn: Session) -> None:
        attempts.append(1)
        raise_sqlstate(conn, "40001")

    try:
        with pytest.raises(DatabaseBusy, match="nothing was changed"):
            db.write(body)
        assert len(attempts) == 3
    finally:
        db.close()


def test_disk_full_is_reported_and_rolled_back(pg_url: str) -> None:
    with open_queue(pg_url) as queue:

        def body(session: Session) -> None:
            assert isinstance(session, PostgresSession)
            session.conn.execute("INSERT INTO leadership VALUES ('x', 'y', 0, 0)")
            raise_sqlstate(session, "53100")

        with pytest.raises(DiskFull, match="rolled back"):
            queue.driver.write(body)
        assert queue.leader_attempt_elect("x", "z", 10)  # the insert did not survive


def test_a_connection_killed_between_transactions_is_replaced(
    pg: PostgresCluster, pg_url: str
) -> None:
    with open_queue(pg_url) as queue:
        queue.enqueue("jobs/1.txt")  # the pool now holds an open connection
        database = pg_url.rsplit("/", 1)[1]
        with psycopg.connect(pg.url()) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [database],
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        job = queue.enqueue("jobs/2.txt")  # retried on a fresh connection
        assert queue.get(job.id).data == "jobs/2.txt"
        assert queue.stats().counts["pending"] == 2
