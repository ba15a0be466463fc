"""pqcore: a persistent job queue that does not lose work.

    from pqcore import open_queue

    queue = open_queue("var/queue.db")          # or sqlite:///..., postgresql://...
    job = queue.enqueue("jobs/0001.txt")
    [held] = queue.claim("worker-1")
    queue.complete(held.id, held.lease_token)

Tasks (your functions, run by ``pq consumer --tasks``): ``pqcore.App``, in pqcore.tasks.

Everything that knows SQL or the job state machine lives in this package.
"""

from __future__ import annotations

from collections.abc import Callable

from pqcore.config import QueueSettings
from pqcore.driver import Driver
from pqcore.exceptions import (
    Conflict,
    DatabaseBusy,
    DatabaseCorrupt,
    DatabaseNotFound,
    DatabaseReadOnly,
    DatabaseUnavailable,
    DiskFull,
    DiskIOError,
    InvalidArgument,
    InvalidTransition,
    JobCancelled,
    JobChanged,
    JobNotFound,
    LeaseLost,
    OutcomeUnknown,
    PayloadTooLarge,
    PQError,
    ScheduleNotFound,
    StorageError,
    TaskFailed,
    WaitTimeout,
)
from pqcore.models import (
    Consumer,
    Dependency,
    EnqueueRequest,
    FailureGroup,
    Job,
    JobCursor,
    JobEvent,
    JobFilter,
    JobOrder,
    Outcome,
    Page,
    QueueControl,
    QueueThroughput,
    SettleResult,
    SortedPage,
    Stats,
    ThroughputBucket,
)
from pqcore.queue import Queue
from pqcore.running import TaskContext
from pqcore.schedules import Schedule, TickResult
from pqcore.states import ConsumerState, DependencyFailure, JobState, OutcomeKind, Transition
from pqcore.tasks import App, NotRetryable, Task, TaskHandle

__version__ = "0.1.0"


def open_queue(
    url_or_path: str | None = None,
    *,
    settings: QueueSettings | None = None,
    create: bool = True,
    clock: Callable[[], float] | None = None,
) -> Queue:
    """Open the queue at a path or URL (default: ``PQ_DB``, else ``var/queue.db``).

    ``create=False`` refuses to create a missing database (``DatabaseNotFound``):
    read-only tools use it so a mistyped path is reported, not silently created.
    ``clock`` is for tests: without it, time is the database's (on PostgreSQL the
    server's clock, never this host's).
    """
    settings = settings or QueueSettings.from_env()
    url = url_or_path or settings.db
    driver: Driver
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from pqcore.drivers.postgresql import PostgresDriver
        except ImportError as error:
            raise InvalidArgument(f"the PostgreSQL backend is not available: {error}") from None
        driver = PostgresDriver(url, settings, create=create)
    elif "://" in url and not url.startswith("sqlite://"):
        raise InvalidArgument(
            f"unsupported queue URL {url!r}: use a path, sqlite:/// or postgresql://"
        )
    else:
        from pqcore.drivers.sqlite import SQLiteDriver

        driver = SQLiteDriver(url, settings, create=create)
    return Queue(driver, settings, clock)


__all__ = [
    "App",
    "Conflict",
    "Consumer",
    "ConsumerState",
    "DatabaseBusy",
    "DatabaseCorrupt",
    "DatabaseNotFound",
    "DatabaseReadOnly",
    "DatabaseUnavailable",
    "Dependency",
    "DependencyFailure",
    "DiskFull",
    "DiskIOError",
    "EnqueueRequest",
    "FailureGroup",
    "InvalidArgument",
    "InvalidTransition",
    "Job",
    "JobCancelled",
    "JobChanged",
    "JobCursor",
    "JobEvent",
    "JobFilter",
    "JobNotFound",
    "JobOrder",
    "JobState",
    "LeaseLost",
    "NotRetryable",
    "Outcome",
    "OutcomeKind",
    "OutcomeUnknown",
    "PQError",
    "Page",
    "PayloadTooLarge",
    "Queue",
    "QueueControl",
    "QueueSettings",
    "QueueThroughput",
    "Schedule",
    "ScheduleNotFound",
    "SettleResult",
    "SortedPage",
    "Stats",
    "StorageError",
    "Task",
    "TaskContext",
    "TaskFailed",
    "TaskHandle",
    "ThroughputBucket",
    "TickResult",
    "Transition",
    "WaitTimeout",
    "open_queue",
]
