"""The PostgreSQL driver: one database server shared by consumers on many hosts.

READ COMMITTED is enough: every state change is a guarded UPDATE that re-checks its row,
and claims lock theirs with ``FOR UPDATE SKIP LOCKED``. Serialization failures and
deadlocks are retried whole; a transaction whose connection broke only when the break
came before COMMIT was sent. The clock is the server's (``transaction_timestamp()``)."""

from __future__ import annotations

import functools
import os
import random
import select
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from pqcore import exceptions as errors
from pqcore import sql
from pqcore.config import QueueSettings
from pqcore.driver import Body, Driver, Params, Row, Session, Sql
from pqcore.drivers.pg_listen import CHANNEL, Connection, Listener
from pqcore.models import Job
from pqcore.states import FINAL_STATES, JobState

T = TypeVar("T")

DIALECT = sql.Dialect(
    name="postgresql",
    param="%({name})s",
    # The caller's value when a test injects a clock, else the server's time.
    now="CAST(coalesce({param}, extract(epoch FROM transaction_timestamp())) AS float8)",
    in_list="= ANY({param})",
    macros={
        "unindexed": "",  # the planner has statistics of its own
        "skip_locked": "FOR UPDATE SKIP LOCKED",
        "lock_row": "FOR UPDATE",
        "lock_dependency": "FOR NO KEY UPDATE",
        "new_token": "replace(gen_random_uuid()::text, '-', '')",
    },
    escape_percent=True,
)
QUERIES = {name: text.encode() for name, text in sql.load(DIALECT).items()}
NOTIFY = f"SELECT pg_notify('{CHANNEL}', q) FROM unnest(%(queues)s::text[]) AS q".encode()

CONNECT_TIMEOUT_SECONDS = 10
POOL_WAIT_SECONDS = 15.0
WAIT_POLL_SECONDS = 1.0  # a waiter re-checks this often even without a notification
# pg_advisory_xact_lock key serialising concurrent migrators ("pq" "migr" in ASCII).
MIGRATION_LOCK_KEY = 0x7071_6D69_6772
BEGIN_SNAPSHOT = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock

assert {JobState.DONE, JobState.PERMANENTLY_FAILED, JobState.CANCELLED} == FINAL_STATES, (
    "job_count_deltas (migrations/postgresql) counts exactly the final states"
)


def describe(url: str) -> str:
    """``user@host:port/dbname`` for messages: never the password."""
    try:
        parts = pg_conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(unparsable PostgreSQL URL)"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    user = f"{parts['user']}@" if parts.get("user") else ""
    return f"{user}{host}:{port}/{parts.get('dbname') or ''}"


def translate(error: BaseException, where: str) -> errors.StorageError:
    """Turn a psycopg error into the queue's error with a message a person can act on."""
    if isinstance(error, errors.StorageError):
        return error
    if isinstance(error, PoolTimeout):
        return errors.DatabaseUnavailable(
            f"no connection to PostgreSQL at {where} within {POOL_WAIT_SECONDS:g}s: "
            "the server is down or unreachable, or every pooled connection is busy"
        )
    state = getattr(error, "sqlstate", None) or ""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    lowered = str(error).lower()
    if state in RETRYABLE_SQLSTATES or state == "55P03":  # 55P03: lock not available
        return errors.DatabaseBusy(
            f"PostgreSQL at {where} kept aborting the transaction ({message}); nothing was changed"
        )
    if state == "25006":
        return errors.DatabaseReadOnly(
            f"PostgreSQL at {where} is read-only (a standby, or default_transaction_read_only);"
            " nothing was changed"
        )
    if state == "53100" or "no space left on device" in lowered:
        return errors.DiskFull(
            f"the disk of PostgreSQL at {where} is full; the change was rolled back and nothing"
            " was lost"
        )
    if state == "3D000" or ("database" in lowered and "does not exist" in lowered):
        return errors.DatabaseNotFound(
            f"no database at {where}: create it first (createdb, or CREATE DATABASE)"
        )
    if state in ("28P01", "28000") or "authentication failed" in lowered:
        return errors.DatabaseUnavailable(
            f"PostgreSQL at {where} refused the login: wrong user or password, or no"
            f" pg_hba.conf entry allows it ({_server_words(error)})"
        )
    if "connection refused" in lowered:
        return errors.DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {where}: connection refused (is the server"
            " running and listening there?)"
        )
    if state == "53300":
        return errors.DatabaseUnavailable(f"PostgreSQL at {where} has too many connections")
    if state.startswith(("08", "57P", "53")) or isinstance(error, psycopg.OperationalError):
        return errors.DatabaseUnavailable(
            f"PostgreSQL at {where} is unavailable: {_server_words(error)}"
        )
    if state.startswith("XX"):
        return errors.DatabaseCorrupt(f"PostgreSQL at {where} reports an internal error: {message}")
    return errors.StorageError(f"PostgreSQL at {where}: {message}")


def _server_words(error: BaseException) -> str:
    """The most telling line of a connection error (after libpq's 'connection to ...')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    return text.split("failed: ", 1)[-1] if "failed: " in text else text


def _check_pooled(conn: Connection) -> None:
    """On each checkout from the pool. A server that ended the connection (a restart,
    pg_terminate_backend) has said so on its socket, which a poll sees without a round
    trip; only then is the connection tried, and if dead, replaced by the pool. So a
    statement that must not be repeated is rarely sent on a connection already gone."""
    waiting = select.poll()  # not select(): a process may hold descriptors past 1024
    waiting.register(conn.fileno(), select.POLLIN)
    if waiting.poll(0):
        ConnectionPool.check_connection(conn)


def _retryable(error: BaseException) -> bool:
    return (getattr(error, "sqlstate", None) or "") in RETRYABLE_SQLSTATES


# Queries whose SQL sends the NOTIFY for the jobs they return (postgresql.sql).
NOTIFY_IN_STATEMENT = frozenset({"job_enqueue_plain_one"})


class PostgresSession(Session):
    def __init__(self, conn: Connection, *, borrowed: bool = False) -> None:
        self.conn = conn
        self.queues: set[str] = set()  # to notify at the end of the transaction
        self.notified: set[str] = set()  # already notified by a statement of it
        self.borrowed = borrowed  # the caller's connection: its row factory is its own

    def _execute(self, query: str, params: Params | None) -> psycopg.Cursor[dict[str, Any]]:
        statement = _dynamic(query) if isinstance(query, Sql) else QUERIES[query]
        if self.borrowed:
            return self.conn.cursor(row_factory=dict_row).execute(statement, params or {})
        return self.conn.execute(statement, params or {})

    def all(self, query: str, params: Params | None = None) -> list[Row]:
        cursor = self._execute(query, params)
        rows: list[Row] = list(cursor.fetchall()) if cursor.description else []
        return rows

    def run(self, query: str, params: Params | None = None) -> int:
        return self._execute(query, params).rowcount

    def jobs(self, query: str, params: Params | None = None) -> list[Job]:
        found = [Job.from_row(row) for row in self._execute(query, params).fetchall()]
        if query in NOTIFY_IN_STATEMENT:
            self.notified.update(job.queue for job in found)
        return found

    def insert_jobs(self, rows: Sequence[Mapping[str, Any]], params: Params) -> list[Job]:
        columns = {
            "queues": "queue", "datas": "data", "priorities": "priority",
            "run_ats": "run_at", "delays": "delay", "max_attempts": "max_attempts",
            "concurrency_keys": "concurrency_key",
        }  # fmt: skip
        arrays = {name: [r[column] for r in rows] for name, column in columns.items()}
        return self.jobs("jobs_insert_many", {**params, **arrays})

    def notify(self, queues: Iterable[str]) -> None:
        self.queues.update(queues)

    def send_notifications(self) -> None:
        """One NOTIFY statement per transaction, delivered when it commits, for the
        queues no statement has notified already."""
        pending = self.queues - self.notified
        if pending:
            self.conn.execute(NOTIFY, {"queues": sorted(pending)})
        self.queues.clear()


IDENTITY = QUERIES["database_identity"]
SAVEPOINT, RELEASE, ROLLBACK_TO = (
    b"SAVEPOINT pq_borrowed",
    b"RELEASE SAVEPOINT pq_borrowed",
    b"ROLLBACK TO SAVEPOINT pq_borrowed",
)
FENCE = b"SELECT pq_fence(%(id)s)"


def application_name() -> str:
    """How this process shows in pg_stat_activity: ``pq consumer 4711``, ``pq 812``
    (the ``pq`` command), ``pq python 90`` (a program of the user's). A name in the
    URL or PGAPPNAME wins."""
    program = Path(sys.argv[0]) if sys.argv and sys.argv[0] else Path("python")
    name = program.parent.name if program.name == "__main__.py" else program.stem
    if name in {"", "-c", "-m"}:
        name = "python"
    label = "pq" if name == "pq" else f"pq {name}"
    return f"{label} {os.getpid()}"[:63]  # the server keeps 63 bytes


class PostgresDriver(Driver):
    """One queue database: a connection pool per process, transactions on it."""

    name = "postgresql"
    recheck_seconds = WAIT_POLL_SECONDS

    def __init__(self, url: str, settings: QueueSettings, *, create: bool = True) -> None:
        # ``create`` is accepted for symmetry with SQLite: pq never creates a PostgreSQL
        # database, so a missing one is errors.DatabaseNotFound either way.
        self.url = url
        self.where = describe(url)
        self.settings = settings
        params = pg_conninfo.conninfo_to_dict(url) if "://" in url else {}
        self._connect_kwargs: dict[str, Any] = {}
        if "connect_timeout" not in params:
            self._connect_kwargs["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
        self._name_connections = "application_name" not in params and "PGAPPNAME" not in os.environ
        self._pool: ConnectionPool[Connection] | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        self._identity: Any = None  # this database's (IDENTITY), read on first need
        self._same_database: dict[tuple[int, int], bool] = {}  # callers' connections checked
        with self.connect(autocommit=True) as conn:  # bad URL, refused, auth: reported here
            self.migrate(conn)
        self.listener = Listener(lambda: self.connect(autocommit=True))

    def __repr__(self) -> str:
        return f"PostgresDriver({self.where!r})"

    # ------------------------------------------------------------ connections

    def connect(self, *, autocommit: bool = False) -> Connection:
        """A connection of its own (not pooled), e.g. for LISTEN; the caller closes it."""
        try:
            return psycopg.connect(
                self.url, autocommit=autocommit, row_factory=dict_row, **self._kwargs()
            )
        except psycopg.Error as error:
            raise translate(error, self.where) from None

    def _kwargs(self) -> dict[str, Any]:
        if not self._name_connections:
            return self._connect_kwargs
        return {**self._connect_kwargs, "application_name": application_name()}  # after a fork too

    def pool(self) -> ConnectionPool[Connection]:
        pid = os.getpid()
        if self._pool is not None and self._pool_pid == pid:
            return self._pool
        with self._pool_lock:
            if self._pool is None or self._pool_pid != pid:
                # A forked child must not share its parent's sockets: it opens its own pool
                # and leaves the parent's alone.
                self._pool = ConnectionPool(
                    self.url,
                    min_size=1,
                    max_size=self.settings.pg_pool_size,
                    kwargs={"row_factory": dict_row, "autocommit": True, **self._kwargs()},
                    timeout=POOL_WAIT_SECONDS,
                    check=_check_pooled,
                    name=f"pq {self.where}",
                    open=True,
                )
                self._pool_pid = pid
            return self._pool

    def close(self) -> None:
        self.listener.close()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.close()

    # ------------------------------------------------------------ transactions

    def write(self, body: Body[T], *, single_statement: bool = False, idempotent: bool = True) -> T:
        """A body of one statement runs without BEGIN/COMMIT (PostgreSQL makes it atomic
        by itself). If the connection breaks while it runs, the statement may have
        committed: a guarded or idempotent one is tried once more on a fresh connection
        (a repeat after an unseen success changes nothing twice; a repeated completion
        reports LeaseLost), any other is reported as of unknown outcome. Durability is
        the server's business (synchronous_commit)."""
        return self._run(body, transaction=not single_statement, repeatable=idempotent)

    def read(self, body: Callable[[Session], T], *, snapshot: bool = False) -> T:
        return self._run(body, transaction=snapshot, begin=BEGIN_SNAPSHOT)

    def _run(
        self,
        body: Callable[[Session], T],
        *,
        transaction: bool,
        begin: str = "BEGIN",
        repeatable: bool = True,
    ) -> T:
        # Pooled connections are in autocommit mode; transactions are explicit, so a body
        # of one statement costs one round trip. Without a transaction every statement
        # commits as it runs: once one was sent, a broken connection leaves its outcome
        # unknown (``committing`` from the start).
        retries = self.settings.busy_retries
        for tries in range(retries + 1):
            committing = not transaction and not repeatable
            broken = False
            try:
                with self.pool().connection() as conn:
                    session = PostgresSession(conn)
                    try:
                        if transaction:
                            conn.execute(begin)
                        result = body(session)
                        session.send_notifications()
                    except BaseException:
                        broken = conn.broken or conn.closed
                        if transaction and not broken:
                            conn.execute("ROLLBACK")
                        raise
                    if transaction:
                        committing = True
                        conn.execute("COMMIT")
                    return result
            except (psycopg.Error, PoolTimeout) as error:
                # A connection that died before COMMIT (server restart, idle timeout) took
                # its transaction with it: one fresh try on another connection is safe.
                lost_before_commit = broken and not committing and tries == 0
                if broken:
                    self._discard_broken()  # its pool-mates likely died with it (a restart)
                if tries < retries and (_retryable(error) or lost_before_commit):
                    time.sleep(min(0.5, 0.005 * 2**tries) * (0.5 + random.random()))
                    continue
                # A statement that failed on a live connection did not commit.
                unknown = committing and (transaction or broken)
                if unknown and isinstance(error, psycopg.OperationalError):
                    raise errors.OutcomeUnknown(
                        f"the connection to PostgreSQL at {self.where} broke while committing:"
                        " the change may or may not have been applied"
                    ) from None
                raise translate(error, self.where) from None
        raise AssertionError("unreachable")

    def _discard_broken(self) -> None:
        try:
            self.pool().check()
        except Exception:  # the server may be down: the retry reports it
            pass

    # ------------------------------------------------------------ the caller's transaction

    def borrowed(self, connection: Any, body: Body[T]) -> T:
        """On a psycopg (3) connection of the caller's to this database. Wake-ups: the
        NOTIFY is sent in the caller's transaction, so consumers wake when it commits."""
        if not isinstance(connection, psycopg.Connection):
            raise errors.InvalidArgument(
                "connection= on a PostgreSQL queue takes a psycopg (3) connection to the"
                f" queue's database, not {type(connection).__name__}"
            )
        conn = connection
        state = conn.info.transaction_status
        if state == psycopg.pq.TransactionStatus.INERROR:
            raise errors.InvalidArgument(
                "the connection's transaction has already failed: roll it back first"
            )
        if state == psycopg.pq.TransactionStatus.IDLE and conn.autocommit:
            raise errors.InvalidArgument(
                "the connection is in autocommit mode with no transaction open: BEGIN one"
                " first (conn.transaction()), so that the queue's writes commit with yours"
            )
        try:
            self._check_same_database(conn)
            conn.execute(SAVEPOINT)
            session = PostgresSession(conn, borrowed=True)
            try:
                result = body(session)
                session.send_notifications()
            except errors.LeaseLost as lost:
                conn.execute(ROLLBACK_TO)
                try:  # abort the caller's transaction: its writes can never commit now
                    conn.execute(FENCE, {"id": lost.job_id})
                except psycopg.Error:
                    pass
                raise
            except BaseException:
                if not (conn.broken or conn.closed):
                    conn.execute(ROLLBACK_TO)
                    conn.execute(RELEASE)
                raise
            conn.execute(RELEASE)
            return result
        except psycopg.Error as error:
            raise translate(error, self.where) from None

    def _check_same_database(self, conn: Connection) -> None:
        key = (id(conn), conn.info.backend_pid)
        if self._same_database.get(key):
            return
        theirs = conn.cursor(row_factory=dict_row).execute(IDENTITY).fetchone()
        if self._identity is None:
            self._identity = self._run(_identity, transaction=False)
        if theirs != self._identity:
            name = theirs["name"] if theirs else "?"
            raise errors.InvalidArgument(
                f"the connection is to database {name!r}, not to the queue's database"
                f" ({self.where})"
            )
        if len(self._same_database) > 256:
            self._same_database.clear()
        self._same_database[key] = True

    # ------------------------------------------------------------ clock, wake-ups, audit

    def wake(self, queues: Iterable[str]) -> None:
        names = sorted(set(queues))
        if names:
            self._run(lambda s: s.run("pq_wake", {"queues": names}), transaction=False)

    def now(self) -> None:
        return None  # the server's: see DIALECT.now

    def listen(self) -> None:
        self.listener.arm()

    def wait(self, seconds: float) -> None:
        self.listener.wait(seconds)

    def storage_problems(self) -> list[str]:
        return []  # the server checks its own pages (data checksums, if enabled)

    # ------------------------------------------------------------ schema

    def schema_version(self, conn: Connection) -> int:
        row = conn.execute(
            "SELECT to_regclass('pq_schema_version') IS NOT NULL AS present"
        ).fetchone()
        if not row or not row["present"]:
            return 0
        found = conn.execute(
            "SELECT coalesce(max(version), 0) AS v FROM pq_schema_version"
        ).fetchone()
        return int(found["v"]) if found else 0

    def migrate(self, conn: Connection) -> None:
        """Bring the schema up to date. Concurrent migrators (several services starting at
        once) queue on an advisory lock, so each migration runs exactly once."""
        migrations = sql.load_migrations("postgresql")
        latest = migrations[-1][0]
        try:
            current = self.schema_version(conn)
            if current == latest:
                return
            self._refuse_newer(current, latest)
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK_KEY])
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS pq_schema_version ("
                    " version integer PRIMARY KEY, name text NOT NULL,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                )
                current = self.schema_version(conn)  # another migrator may have won
                self._refuse_newer(current, latest)
                for number, name, script in migrations:
                    if number > current:
                        conn.execute(script.encode())  # several statements, no parameters
                        conn.execute(
                            "INSERT INTO pq_schema_version (version, name) VALUES (%s, %s)",
                            [number, name],
                        )
        except psycopg.Error as error:
            raise translate(error, self.where) from None

    def _refuse_newer(self, current: int, latest: int) -> None:
        if current > latest:
            raise errors.SchemaTooNew(
                f"PostgreSQL at {self.where} has pq schema version {current};"
                f" this pq knows up to {latest}"
            )


def _identity(session: Session) -> Any:
    return session.one("database_identity")


@functools.lru_cache(maxsize=512)
def _dynamic(statement: str) -> bytes:
    return sql.render_dynamic(statement, DIALECT).encode()
