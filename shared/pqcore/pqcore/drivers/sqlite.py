"""The SQLite driver: one WAL-mode file shared by every process on one host.

One connection per thread and process (a forked child opens its own), each in
autocommit mode so transactions are explicit: every write is ``BEGIN IMMEDIATE``,
which takes the write lock up front, so a read-then-update inside it can never be
interleaved with another writer. Idle consumers are woken by the doorbell
(``pqcore.doorbell``). The clock is the host's: every process of one SQLite file runs
on one host.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pqcore import exceptions as errors
from pqcore import sql
from pqcore.config import QueueSettings
from pqcore.doorbell import Doorbell
from pqcore.driver import Body, Driver, Params, Row, Session, Sql
from pqcore.models import Job
from pqcore.states import STATE_BY_VALUE

T = TypeVar("T")

DIALECT = sql.Dialect(
    name="sqlite",
    param=":{name}",
    now="{param}",  # always passed in: the host's clock or the one a test injects
    in_list="IN (SELECT value FROM json_each({param}))",  # list parameters go as JSON
    macros={
        "unindexed": "+",  # unary plus: the planner leaves that column's index alone
        "skip_locked": "",
        "lock_row": "",  # one writer at a time: the transaction itself is the lock
        "lock_dependency": "",
        "new_token": "lower(hex(randomblob(16)))",
    },
)
QUERIES = sql.load(DIALECT)

# Primary result codes (the low byte of an extended code).
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY = 5, 6, 8
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 11, 13, 14, 26
SQLITE_IOERR = 10
SQLITE_IOERR_FSYNC, SQLITE_IOERR_DIR_FSYNC = 1034, 1290
# After these the connection is closed and the next call opens a new one: after an I/O
# error SQLite's view of the file is suspect (a failed fsync may have dropped pages the
# kernel reported written); a connection opened while the filesystem was read-only
# stays read-only (SQLite's fallback) even once it is writable again.
BROKEN_CONNECTION = frozenset({SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_READONLY})
# Seconds between tries for the write lock: short while a wait is short, longer once it
# is long (a transaction holding it for seconds should not cost its waiters a core).
LOCK_STEP_MIN, LOCK_STEP_SHORT_WAIT, LOCK_STEP_LONG_WAIT = 0.0001, 0.0005, 0.002
LOCK_SHORT_WAIT_SECONDS = 0.05  # the Worker's max_ack_delay: outcomes wait on this lock
# Checkpoints: SQLite's automatic ones are PASSIVE, and a PASSIVE checkpoint that starts
# while another connection's commit resets the WAL can, before SQLite 3.51.3 (3.50.7,
# 3.44.6), skip frames and corrupt a b-tree on a healthy disk ("the WAL-reset bug",
# https://sqlite.org/wal.html#walresetbug; Debian 12 ships 3.40.1). A FULL checkpoint takes
# the write lock before it reads the WAL's header, so no reset can race it: pq turns the
# automatic ones off and runs FULL ones itself. But a FULL checkpoint whose busy handler
# gives up on the write lock proceeds as a PASSIVE one (SQLite's documentation of
# sqlite3_wal_checkpoint_v2): with busy_timeout 0 that happened whenever a writer was mid
# transaction, and a power-cut run found the race. So a checkpoint first waits for the
# lock as a writer does (BEGIN IMMEDIATE, same quick tries, same patience; skipped if the
# lock never comes), lets it go and at once runs FULL with CHECKPOINT_LOCK_PATIENCE_MS to
# take it: it degrades only if another writer takes the lock in the microseconds between
# and holds it longer than that.
CHECKPOINT_EVERY_COMMITS = 200  # per connection; SQLite's own default is about 1,000 pages
# Also how long a checkpoint holding the write lock waits for readers still on an older
# snapshot, writers waiting meanwhile: pq's reads take milliseconds.
CHECKPOINT_LOCK_PATIENCE_MS = 1000
WAIT_POLL_SECONDS = 0.05  # without the doorbell
DOORBELL_RECHECK_SECONDS = 1.0  # with it: a missed ring delays work at most this long


def sqlite_path(url_or_path: str) -> str:
    """``sqlite:///rel/path``, ``sqlite:////abs/path`` or a plain path -> a file path."""
    if url_or_path.startswith("sqlite://"):
        path = url_or_path[len("sqlite://") :]
        # sqlite:///var/q.db is relative (three slashes), sqlite:////abs is absolute.
        path = path[1:] if path.startswith("/") else path
        return path or ":memory:"
    return url_or_path


def _io_error(error: sqlite3.Error, path: str) -> errors.StorageError:
    """SQLITE_IOERR: a read-only filesystem, a failed fsync, or another I/O error."""
    name = getattr(error, "sqlite_errorname", "SQLITE_IOERR")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        # EROFS reaches SQLite as a plain write error; the filesystem tells the cause.
        return errors.DatabaseReadOnly(
            f"database {path} became read-only (its filesystem refuses writes: {name});"
            " nothing was changed. Remount it read-write or move the queue, then retry"
        )
    code = getattr(error, "sqlite_errorcode", 0) or 0
    if code in (SQLITE_IOERR_FSYNC, SQLITE_IOERR_DIR_FSYNC):
        return errors.DiskIOError(
            f"the disk holding {path} failed to make a commit durable (fsync failed: {name});"
            " the change was not committed. Check the disk (kernel log, dmesg), retry once it"
            " is healthy, and run pq doctor"
        )
    return errors.DiskIOError(
        f"input/output error on database {path} ({name}); the change was not committed."
        " Check the disk (kernel log, dmesg), retry once it is healthy, and run pq doctor"
    )


def translate(error: sqlite3.Error, path: str) -> errors.StorageError:
    """Turn a sqlite3 error into the queue's error with a message a person can act on."""
    code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
    message = str(error)
    if code in (SQLITE_BUSY, SQLITE_LOCKED) or "locked" in message:
        return errors.DatabaseBusy(
            f"database {path} stayed locked by other writers; nothing was changed"
        )
    if code == SQLITE_READONLY or "readonly" in message:
        return errors.DatabaseReadOnly(f"database {path} is read-only; nothing was changed")
    if code == SQLITE_FULL or "disk is full" in message:
        return errors.DiskFull(
            f"disk holding {path} is full; the change was rolled back and nothing was lost"
        )
    if code == SQLITE_NOTADB or "not a database" in message:
        return errors.DatabaseCorrupt(f"{path} is not a queue database (file is not a database)")
    if code == SQLITE_CORRUPT or "malformed" in message:
        return errors.DatabaseCorrupt(f"database {path} is corrupt: {message}")
    if code == SQLITE_IOERR or "disk I/O error" in message:
        return _io_error(error, path)
    if code == SQLITE_CANTOPEN or "unable to open" in message:
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isfile(path) and not os.access(folder, os.W_OK):
            # A WAL database needs its -wal and -shm files beside it.
            return errors.DatabaseReadOnly(
                f"database {path} is in a read-only directory (SQLite must create its -wal"
                " and -shm files there); nothing was changed"
            )
        return errors.DatabaseUnavailable(f"cannot open database {path}: {message}")
    return errors.StorageError(f"database {path}: {message}")


def checkpoint_failed(error: sqlite3.Error, path: str) -> errors.StorageError:
    """A checkpoint's error, of the kind ``translate`` gives it, saying what it means:
    nothing committed is lost, but the WAL cannot be emptied while the disk refuses."""
    translated = translate(error, path)
    cause = str(translated).split(";")[0]
    if (getattr(error, "sqlite_errorcode", 0) or 0) in (SQLITE_IOERR_FSYNC, SQLITE_IOERR_DIR_FSYNC):
        cause = f"the disk holding {path} failed an fsync ({error.sqlite_errorname})"
    return type(translated)(
        f"{cause}; a checkpoint could not copy the WAL into the database. Every commit"
        " stands (it is in the WAL), but the WAL keeps growing until a checkpoint"
        " succeeds: free space or mend the disk, then run pq doctor"
    )


def _breaks_connection(error: sqlite3.Error) -> bool:
    code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
    return code in BROKEN_CONNECTION or "disk I/O error" in str(error)


def _is_busy(error: sqlite3.Error) -> bool:
    code = (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF
    return code in (SQLITE_BUSY, SQLITE_LOCKED) or "database is locked" in str(error)


class SQLiteSession(Session):
    def __init__(self, conn: sqlite3.Connection, *, borrowed: bool = False) -> None:
        self.conn = conn
        self.rings = False
        self.borrowed = borrowed  # the caller's connection: its row factory is its own

    def _execute(self, query: str, params: Params | None) -> sqlite3.Cursor:
        statement = sql.render_dynamic(query, DIALECT) if isinstance(query, Sql) else QUERIES[query]
        if self.borrowed:
            cursor = self.conn.cursor()
            cursor.row_factory = sqlite3.Row
            return cursor.execute(statement, _adapt(params))
        return self.conn.execute(statement, _adapt(params))

    def all(self, query: str, params: Params | None = None) -> list[Row]:
        return self._execute(query, params).fetchall()

    def run(self, query: str, params: Params | None = None) -> int:
        return self._execute(query, params).rowcount

    def jobs(self, query: str, params: Params | None = None) -> list[Job]:
        return _jobs(self._execute(query, params))

    def insert_jobs(self, rows: Sequence[Mapping[str, Any]], params: Params) -> list[Job]:
        # executemany runs one prepared statement per row in C; the rows are then read
        # back: inside the write lock, every id above the old maximum is one of ours.
        after = self.conn.execute(QUERIES["jobs_last_id"]).fetchone()[0]
        self.conn.executemany(QUERIES["job_insert_plain"], [{**params, **r} for r in rows])
        jobs = _jobs(self.conn.execute(QUERIES["jobs_after"], {"after": after}))
        if len(jobs) != len(rows):
            raise RuntimeError(f"inserted {len(rows)} jobs but read back {len(jobs)}")
        return jobs

    def notify(self, queues: Iterable[str]) -> None:
        # The doorbell rings every waiter (they filter by queue when they look).
        self.rings = self.rings or bool(set(queues))


class SQLiteDriver(Driver):
    name = "sqlite"

    def __init__(self, url_or_path: str, settings: QueueSettings, *, create: bool = True) -> None:
        self.path = sqlite_path(url_or_path)
        self.where = self.path
        self.settings = settings
        self._synchronous = settings.sqlite_synchronous.upper()
        self._local = threading.local()
        # (pid, owning thread, connection) of every connection opened, for close() and
        # for closing those whose thread has ended (Streamlit runs each rerun on a
        # new thread; without this a long-lived queue would collect connections).
        self._all: list[tuple[int, threading.Thread, sqlite3.Connection]] = []
        self._all_lock = threading.Lock()
        if self.path != ":memory:":
            self._prepare_file(create)
        wakeup = settings.sqlite_wakeup == "doorbell" and self.path != ":memory:"
        self.doorbell = Doorbell(self.path) if wakeup else None
        self.recheck_seconds = DOORBELL_RECHECK_SECONDS if wakeup else WAIT_POLL_SECONDS
        self._armed = threading.local()
        self.migrate()

    def __repr__(self) -> str:
        return f"SQLiteDriver({self.path!r})"

    def _prepare_file(self, create: bool) -> None:
        file = Path(self.path)
        if file.is_dir():
            raise errors.DatabaseUnavailable(f"{self.path} is a directory, not a database file")
        if file.exists():
            return
        if not create:
            raise errors.DatabaseNotFound(f"no queue database at {self.path}")
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise errors.DatabaseUnavailable(
                f"cannot create the directory for {self.path}: {error.strerror}"
            ) from None

    # ------------------------------------------------------------ connections

    def connection(self) -> sqlite3.Connection:
        local = self._local
        conn: sqlite3.Connection | None = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            return conn
        conn = self._connect()
        local.conn, local.pid = conn, os.getpid()
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.settings.busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as error:
            raise translate(error, self.path) from None
        conn.row_factory = sqlite3.Row
        try:
            self._apply_pragmas(conn)
        except sqlite3.Error as error:
            conn.close()
            raise translate(error, self.path) from None
        pid = os.getpid()
        ended: list[tuple[int, threading.Thread, sqlite3.Connection]] = []
        keep: list[tuple[int, threading.Thread, sqlite3.Connection]] = []
        with self._all_lock:
            for entry in self._all:
                owner_gone = entry[0] == pid and not entry[1].is_alive()
                (ended if owner_gone else keep).append(entry)
            keep.append((pid, threading.current_thread(), conn))
            self._all = keep
        for _, _, old in ended:
            try:
                old.close()
            except sqlite3.Error:
                pass
        return conn

    def _apply_pragmas(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.settings.busy_timeout_ms)}")
        if self.path != ":memory:":
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                self._retry_busy(lambda: conn.execute("PRAGMA journal_mode = WAL").fetchone())
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")  # validated by QueueSettings
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # see CHECKPOINT_EVERY_COMMITS
        conn.execute("PRAGMA foreign_keys = ON")
        # A cancelled dependent's own dependents follow it (migrations: 0005's trigger).
        conn.execute("PRAGMA recursive_triggers = ON")

    def _discard(self, conn: sqlite3.Connection) -> None:
        """Close this thread's connection after an I/O error; the next call opens a new one."""
        with self._all_lock:
            self._all = [entry for entry in self._all if entry[2] is not conn]
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        try:
            conn.close()
        except sqlite3.Error:
            pass

    def _discard_current(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            self._discard(conn)

    def close(self) -> None:
        if self.doorbell is not None:
            self.doorbell.close()
        # A connection inherited across fork belongs to the parent: closing it here could
        # checkpoint and unlink the WAL under the parent's feet, so only ours are closed.
        with self._all_lock:
            conns, self._all = self._all, []
        for pid, _, conn in conns:
            if pid != os.getpid():
                continue
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()

    # ------------------------------------------------------------ transactions

    def write(self, body: Body[T], *, single_statement: bool = False, idempotent: bool = True) -> T:
        """``BEGIN IMMEDIATE``, retried whole on SQLITE_BUSY (a refused BEGIN or a
        rolled-back body: never a commit of unknown outcome, so ``idempotent`` does not
        matter here). Every commit waits for the disk at the configured ``synchronous``
        level, claims included.

        No commit is relaxed to ``synchronous=NORMAL`` (claims once were): that leaves
        committed frames in the WAL that only a later fsync writes. If that fsync fails,
        Linux marks the pages clean: the frames stay visible but never reach the disk,
        and every later commit (fsynced, acknowledged) and checkpoint builds on them.
        After a power cut the WAL's checksum chain ends at the hole: the commits after
        it are lost, and pages a checkpoint already copied into the database mix with
        the older ones the WAL replays (``database disk image is malformed``). At FULL
        a failed fsync can only drop the frames of the transaction that reports the
        error. See tests/powerloss/RESULTS.md."""
        try:
            return self._write(body)
        except errors.DatabaseReadOnly:
            if self.path == ":memory:" or not os.access(self.path, os.W_OK):
                raise
            # The connection was opened while the filesystem refused writes (SQLite then
            # opens read-only) and has been closed; it is writable again: a new one can.
            return self._write(body)

    def _write(self, body: Body[T]) -> T:
        conn = self.connection()
        rang = False

        def attempt() -> T:
            nonlocal rang
            self._begin_immediate(conn)
            try:
                session = SQLiteSession(conn)
                result = body(session)
                conn.execute("COMMIT")
                rang = session.rings
                return result
            except BaseException:
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        self._discard(conn)  # keep the first error; never reuse this state
                raise

        result = self._retry_busy(attempt)
        if rang and self.doorbell is not None:
            self.doorbell.ring()
        commits = getattr(self._local, "commits", 0) + 1
        self._local.commits = commits
        if commits % CHECKPOINT_EVERY_COMMITS == 0:
            self.checkpoint(conn)
        return result

    def checkpoint(self, conn: sqlite3.Connection | None = None) -> tuple[int, int, int] | None:
        """A FULL checkpoint holding the write lock (see CHECKPOINT_EVERY_COMMITS):
        SQLite's (busy, WAL frames, frames backfilled), or None for an in-memory database,
        a lock that did not come within busy_timeout_ms (no checkpoint then), or an error.
        The commits before it stand whatever happens, so its errors are no exception of
        the caller's: they go to ``report_storage_error``. After an I/O error the
        connection is closed."""
        if self.path == ":memory:":
            return None
        conn = conn or self.connection()
        try:
            self._begin_immediate(conn)
            conn.execute("ROLLBACK")
            conn.execute(f"PRAGMA busy_timeout = {CHECKPOINT_LOCK_PATIENCE_MS}")
            try:
                row = conn.execute("PRAGMA wal_checkpoint(FULL)").fetchone()
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(self.settings.busy_timeout_ms)}")
        except sqlite3.Error as error:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if _breaks_connection(error):
                self._discard(conn)
            if not _is_busy(error):
                self.report_storage_error(checkpoint_failed(error, self.path))
            return None
        return (int(row[0]), int(row[1]), int(row[2])) if row else None

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """Take the write lock, trying again every 0.1-0.5 ms at first (see lock_pause).

        SQLite's own busy handler sleeps 1, 2, 5, 10, ... 100 ms between tries, so a
        waiting writer sleeps through many short transactions of others and its
        latency jumps to tens of milliseconds; short steps keep the wait close to
        the time the lock is really held. Same total patience (busy_timeout_ms).
        """
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            started = time.monotonic()
            deadline = started + self.settings.busy_timeout_ms / 1000
            pause = LOCK_STEP_MIN
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as error:
                    now = time.monotonic()
                    if not _is_busy(error) or now >= deadline:
                        raise
                time.sleep(pause * (0.5 + random.random()))
                pause = lock_pause(pause, now - started)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self.settings.busy_timeout_ms)}")

    def read(self, body: Callable[[Session], T], *, snapshot: bool = False) -> T:
        conn = self.connection()
        try:
            if not snapshot:
                return body(SQLiteSession(conn))
            conn.execute("BEGIN")
            try:
                return body(SQLiteSession(conn))
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.Error as error:
            if _breaks_connection(error):
                self._discard_current()
            raise translate(error, self.path) from None

    def _retry_busy(self, attempt: Callable[[], T]) -> T:
        # busy_timeout already waits inside SQLite; this outer loop covers the cases it
        # does not (a deadlocked upgrade, a checkpoint holding the lock) with jitter.
        retries = self.settings.busy_retries
        for tries in range(retries + 1):
            try:
                return attempt()
            except sqlite3.Error as error:
                if _is_busy(error) and tries < retries:
                    time.sleep(min(0.5, 0.005 * 2**tries) * (0.5 + random.random()))
                    continue
                if _breaks_connection(error):
                    self._discard_current()
                raise translate(error, self.path) from None
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ the caller's transaction

    def borrowed(self, connection: Any, body: Body[T]) -> T:
        """On a ``sqlite3.Connection`` of the caller's to this file. Wake-ups: the doorbell
        cannot ring when the caller commits; waiting consumers find the jobs at their next
        re-check (``recheck_seconds``), or at once if the caller calls ``Queue.wake``."""
        if not isinstance(connection, sqlite3.Connection):
            raise errors.InvalidArgument(
                "connection= on a SQLite queue takes a sqlite3.Connection to the queue's file,"
                f" not {type(connection).__name__}"
            )
        conn = connection
        try:
            self._check_same_file(conn)
            if not conn.in_transaction:
                if _autocommits(conn):
                    raise errors.InvalidArgument(
                        "the connection is in autocommit mode with no transaction open: BEGIN"
                        " one first, so that the queue's writes commit with yours"
                    )
                conn.execute("BEGIN IMMEDIATE")  # what the sqlite3 module would open anyway
            recursive = conn.execute("PRAGMA recursive_triggers").fetchone()[0]
            if not recursive:
                conn.execute("PRAGMA recursive_triggers = ON")
            try:
                return self._in_savepoint(conn, body)
            finally:
                if not recursive:
                    conn.execute("PRAGMA recursive_triggers = OFF")
        except sqlite3.Error as error:
            raise translate(error, self.path) from None

    def _in_savepoint(self, conn: sqlite3.Connection, body: Body[T]) -> T:
        conn.execute("SAVEPOINT pq_borrowed")
        try:
            result = body(SQLiteSession(conn, borrowed=True))
        except errors.LeaseLost:
            if conn.in_transaction:  # fenced: the caller's writes must not commit either
                conn.execute("ROLLBACK")
            raise
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK TO pq_borrowed")
                conn.execute("RELEASE pq_borrowed")
            raise
        conn.execute("RELEASE pq_borrowed")
        return result

    def _check_same_file(self, conn: sqlite3.Connection) -> None:
        files = {row[1]: row[2] for row in conn.execute("PRAGMA database_list")}
        main = files.get("main") or ""
        try:
            same = bool(main) and self.path != ":memory:" and os.path.samefile(main, self.path)
        except OSError:
            same = False
        if not same:
            raise errors.InvalidArgument(
                f"the connection is to {main or 'an in-memory database'!r}, not to the queue's"
                f" database {self.path}"
            )

    # ------------------------------------------------------------ clock, wake-ups, audit

    def wake(self, queues: Iterable[str]) -> None:
        if self.doorbell is not None and set(queues):
            self.doorbell.ring()

    def now(self) -> float:
        return time.time()

    def listen(self) -> None:
        self._armed.on = self.doorbell is not None and self.doorbell.listen()

    def wait(self, seconds: float) -> None:
        if self.doorbell is not None and getattr(self._armed, "on", False):
            self.doorbell.wait(seconds)
        else:
            time.sleep(min(seconds, WAIT_POLL_SECONDS))

    def storage_problems(self) -> list[str]:
        conn = self.connection()
        try:
            integrity = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()[:20]
        except sqlite3.Error as error:
            raise translate(error, self.path) from None
        problems = [] if integrity == ["ok"] else [f"integrity_check: {x}" for x in integrity[:20]]
        return problems + [f"foreign key broken in {r[0]} row {r[1]}" for r in broken]

    # ------------------------------------------------------------ schema

    def migrate(self) -> None:
        migrations = sql.load_migrations("sqlite")
        latest = migrations[-1][0]
        conn = self.connection()
        try:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as error:
            raise translate(error, self.path) from None
        if current > latest:
            raise errors.SchemaTooNew(
                f"database {self.path} has schema version {current}; this pq knows up to {latest}"
            )
        if current == latest:
            return

        def apply(_: Session) -> None:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process won?
            for number, _name, script in migrations:
                if number > version:
                    for statement in split_statements(script):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {number}")

        self.write(apply)


def split_statements(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies (BEGIN ... END;) whole."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


_JOB_FIELDS = tuple(Job.__dataclass_fields__)
_STATUS_AT = _JOB_FIELDS.index("status")
_FLAG_AT = _JOB_FIELDS.index("has_dependents")


def lock_pause(pause: float, waited: float) -> float:
    """The next pause between tries for the write lock, after ``waited`` seconds.

    SQLite keeps no queue of writers: whoever tries when the lock is free gets it. A
    Worker that commits, hands out its batch and begins again leaves the lock free for
    a fraction of a millisecond between its transactions; a waiter stepping 2 ms
    missed those gaps for up to 90 ms in a row, and the outcomes it was writing became
    visible later than max_ack_delay (bench/visibility, two Workers draining 5,000
    jobs at FULL: 32-96 late in every run). Steps of at most 0.5 ms for the first
    50 ms find the gaps (0 late in 4 runs, slowest outcome 23-40 ms); after that the
    holder is a long transaction and 2 ms steps cost its waiters less."""
    ceiling = LOCK_STEP_SHORT_WAIT if waited < LOCK_SHORT_WAIT_SECONDS else LOCK_STEP_LONG_WAIT
    return min(pause * 2, ceiling)


def _autocommits(conn: sqlite3.Connection) -> bool:
    """True when the sqlite3 module would run the queue's statements each on its own."""
    return getattr(conn, "autocommit", None) is True or conn.isolation_level is None


def _adapt(params: Params | None) -> Params:
    """List parameters travel as JSON text (read back with json_each)."""
    if not params:
        return {}
    if not any(isinstance(v, list | tuple) for v in params.values()):
        return params
    return {k: json.dumps(v) if isinstance(v, list | tuple) else v for k, v in params.items()}


def _jobs(cursor: sqlite3.Cursor) -> list[Job]:
    """Jobs from a cursor over whole ``jobs`` rows: columns located once per cursor
    rather than looked up by name for every row (the claim and settle hot path)."""
    rows = cursor.fetchall()
    if not rows:
        return []
    names = [column[0] for column in cursor.description]
    order = [names.index(field) for field in _JOB_FIELDS]
    jobs = []
    for row in rows:
        values = [row[i] for i in order]
        values[_STATUS_AT] = STATE_BY_VALUE[values[_STATUS_AT]]
        values[_FLAG_AT] = values[_FLAG_AT] == 1
        jobs.append(Job(*values))
    return jobs
