"""The seam between the queue's logic (``pqcore.queue``, written once) and a database.

A driver knows only its dialect: how to open connections and run transactions (with
its own retry rules), how its SQL is spelled (``pqcore.sql.Dialect`` and the
overrides file), how idle consumers are woken, how its errors read, and what its
clock is. Everything a job queue decides lives above it.

Inside a transaction the queue talks to a ``Session``: three query primitives over
named queries (procrastinate's ``execute_query``/``_one``/``_all``), a fast path for job
rows, the dialect's bulk insert, and ``notify``.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from pqcore.exceptions import StorageError
from pqcore.models import Job

T = TypeVar("T")
Row = Mapping[str, Any]
Body = Callable[["Session"], T]  # a transaction's work
Params = Mapping[str, Any]
StorageErrorListener = Callable[[StorageError], None]

log = logging.getLogger("pqcore.storage")


class Sql(str):
    """A statement built at run time in the shared spelling (e.g. a job filter), given
    to a session in place of a query name; the driver renders and caches it."""


class Session(abc.ABC):
    """One transaction's view of the database."""

    @abc.abstractmethod
    def all(self, query: str, params: Params | None = None) -> list[Row]:
        """Every row of the named query (or ``Sql``)."""

    def one(self, query: str, params: Params | None = None) -> Row | None:
        rows = self.all(query, params)
        return rows[0] if rows else None

    @abc.abstractmethod
    def run(self, query: str, params: Params | None = None) -> int:
        """Run a statement; how many rows it changed."""

    @abc.abstractmethod
    def jobs(self, query: str, params: Params | None = None) -> list[Job]:
        """Whole ``jobs`` rows as ``Job``s (the claim and settle hot path)."""

    @abc.abstractmethod
    def insert_jobs(self, rows: Sequence[Mapping[str, Any]], params: Params) -> list[Job]:
        """Insert jobs without dedupe keys in one go, ids ascending in input order.
        ``rows`` hold the per-job values, ``params`` the shared ones (now, actor)."""

    @abc.abstractmethod
    def notify(self, queues: Iterable[str]) -> None:
        """Wake consumers waiting on these queues once this transaction commits."""


class Driver(abc.ABC):
    """One database: its transactions, dialect, wake-ups, errors and clock."""

    name: str  # "sqlite" | "postgresql"
    where: str  # for messages: a path, or user@host:port/db (never a password)

    @abc.abstractmethod
    def write(self, body: Body[T], *, single_statement: bool = False, idempotent: bool = True) -> T:
        """Run ``body`` in one write transaction and commit; retried whole where the
        dialect says it is safe (busy, serialization failure). Any exception rolls back.

        The commit is as durable as the database is configured for (no write is made
        less durable than another: see ``SQLiteDriver.write``). ``single_statement=True``:
        at most one statement of ``body`` changes data, so the driver may skip
        BEGIN/COMMIT round trips. ``idempotent=False``: running that statement twice
        would change data twice (an unkeyed insert), so a connection lost while it ran
        is reported as an outcome unknown, not retried."""

    @abc.abstractmethod
    def read(self, body: Callable[[Session], T], *, snapshot: bool = False) -> T:
        """Run queries; ``snapshot=True`` sees one consistent snapshot across them."""

    @abc.abstractmethod
    def now(self) -> float | None:
        """The clock for ``:now`` when the queue has none injected: a value, or None for
        a database that reads its own (PostgreSQL: the server's time)."""

    @abc.abstractmethod
    def listen(self) -> None:
        """Arm this thread's wake-up before checking for work, so none is missed."""

    @abc.abstractmethod
    def wait(self, seconds: float) -> None:
        """Sleep until a wake-up arrives or ``seconds`` pass."""

    recheck_seconds: float  # how long a waiter trusts wake-ups before looking again

    @abc.abstractmethod
    def wake(self, queues: Iterable[str]) -> None:
        """Wake consumers waiting on these queues now (outside any transaction)."""

    @abc.abstractmethod
    def borrowed(self, connection: Any, body: Body[T]) -> T:
        """Run ``body`` inside the caller's own open transaction on ``connection`` (a
        connection of the caller's to this queue's database, else ``InvalidArgument``),
        without committing: the caller's commit commits it, its rollback undoes it.

        A connection in autocommit mode with no transaction open is refused; one that
        would open a transaction by itself has it opened first. A body that raises leaves
        the caller's transaction as it was before the call (a savepoint is rolled back),
        except ``LeaseLost``: a fenced lease holder, whose transaction is then doomed
        (rolled back on SQLite, aborted on PostgreSQL) so its writes can never commit.
        Errors are translated as in ``write``; nothing is retried (the transaction is the
        caller's). Wake-ups: see each driver."""

    @abc.abstractmethod
    def storage_problems(self) -> list[str]:
        """The storage's own integrity checks, for the doctor (SQLite's integrity_check)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def on_storage_error(self, listener: StorageErrorListener) -> None:
        """Call ``listener`` with each storage error of work the driver does on its own
        after a call has succeeded (SQLite's checkpoints), which no exception can carry."""
        self.__dict__.setdefault("_storage_error_listeners", []).append(listener)

    def report_storage_error(self, error: StorageError) -> None:
        """Hand a background storage error to the listeners, or log it when there are
        none: a disk that fails only there must still be seen before a commit fails."""
        listeners: list[StorageErrorListener] = self.__dict__.get("_storage_error_listeners", [])
        if not listeners:
            log.warning("%s", error)
        for listener in listeners:
            try:
                listener(error)
            except Exception:  # a listener's bug must not fail the call that succeeded
                log.exception("a storage error listener failed on: %s", error)
