"""Every error pqcore raises. Each docstring is the error's default message.

Callers catch ``PQError`` for anything the queue reports on purpose; the CLI prints
``str(error)`` on one line and exits with ``error.exit_code``.
"""

from __future__ import annotations

import time

from pqcore.states import Transition


class PQError(Exception):
    """The queue reported an error."""

    exit_code = 1

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or self.__class__.__name__).strip())


class InvalidArgument(PQError, ValueError):
    """An argument is not valid."""

    exit_code = 2


class PayloadTooLarge(InvalidArgument):
    """The job payload is larger than the configured limit."""


class JobNotFound(PQError, LookupError):
    """No job has that id."""

    def __init__(self, job_id: int, message: str | None = None) -> None:
        self.job_id = job_id
        super().__init__(message or f"no job with id {job_id}")


class ScheduleNotFound(PQError, LookupError):
    """No schedule has that name."""

    def __init__(self, name: str, message: str | None = None) -> None:
        self.name = name
        super().__init__(message or f"no schedule named {name!r}")


class Conflict(PQError):
    """Another actor changed the job first; this change was not applied."""

    def __init__(self, job_id: int, message: str | None = None) -> None:
        self.job_id = job_id
        super().__init__(message)


class InvalidTransition(Conflict):
    """The job is not in a state this action may move it out of."""

    def __init__(self, job_id: int, action: str, current: str, message: str | None = None) -> None:
        self.action = action
        self.current = current
        super().__init__(job_id, message or f"cannot {action} job {job_id}: it is {current}")


class JobChanged(InvalidTransition):
    """Someone else moved the job after the caller last looked at it (the history event
    it saw): nothing was applied. ``changed_action``, ``changed_by`` and ``changed_at``
    say what happened, from the job's history; ``current`` is its state now."""

    def __init__(
        self, job_id: int, attempted: str, current: str, *, action: str, by: str, at: float
    ) -> None:
        self.changed_action = action
        self.changed_by = by
        self.changed_at = at
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))
        super().__init__(
            job_id, attempted, current,
            f"job {job_id} was {past_tense(action)} by {by} at {when} UTC (it is now"
            f" {current}); {attempted} was not applied",
        )  # fmt: skip


def past_tense(action: str) -> str:
    """How a history action reads in a sentence: "job 7 was *cancelled* by carol"."""
    return _PAST.get(action, action.replace("_", " "))


_PAST: dict[str, str] = {
    Transition.ENQUEUE: "enqueued", Transition.CLAIM: "claimed",
    Transition.COMPLETE: "completed", Transition.FAIL: "failed",
    Transition.DEAD_LETTER: "dead-lettered", Transition.RELEASE: "released",
    Transition.RESCUE: "rescued", Transition.SCHEDULE_RETRY: "scheduled for a retry",
    Transition.RESUBMIT: "resubmitted", Transition.CANCEL: "cancelled",
    Transition.MARK_DONE: "marked done", Transition.MARK_FAILED: "marked failed",
}  # fmt: skip


class LeaseLost(Conflict):
    """The caller's lease on the job is no longer valid (it was rescued, finished or re-claimed).

    The caller must stop working on the job and must not report its outcome again:
    another consumer may own it now. This is the fence against zombie workers.
    """

    def __init__(self, job_id: int, message: str | None = None) -> None:
        super().__init__(job_id, message or f"lease on job {job_id} is no longer held")


class JobCancelled(LeaseLost):
    """An operator cancelled the job while the caller held it: stop, write nothing more."""

    def __init__(self, job_id: int, message: str | None = None) -> None:
        super().__init__(job_id, message or f"job {job_id} was cancelled by an operator")


class TaskFailed(PQError):
    """The task's job ended without a result (dead-lettered or cancelled)."""

    def __init__(self, job_id: int, status: str, error: str | None, task: str | None = None):
        self.job_id = job_id
        self.status = status
        self.error = error
        self.task = task
        what = f"task {task} (job {job_id})" if task else f"job {job_id}"
        super().__init__(f"{what} ended {status}: {error or 'no error recorded'}")


class WaitTimeout(PQError, TimeoutError):
    """The job did not finish within the time waited for it; it may still."""


class MigrationRefused(PQError):
    """pq migrate-backend refused to copy: the source is in use or the target is not empty."""


class StorageError(PQError):
    """The database could not be used."""

    exit_code = 3


class DatabaseNotFound(StorageError):
    """No queue database exists at that location."""


class DatabaseUnavailable(StorageError):
    """The queue database cannot be opened or created."""


class OutcomeUnknown(DatabaseUnavailable):
    """The connection broke while a change was committing: it may or may not have been
    applied. Look before repeating a change that is not idempotent (an unkeyed enqueue:
    give it a dedupe key to make a repeat safe)."""


class DatabaseReadOnly(StorageError):
    """The queue database is read-only; nothing was changed."""


class DatabaseCorrupt(StorageError):
    """The file is not a valid queue database."""


class DatabaseBusy(StorageError):
    """The database stayed locked by other writers past the retry budget; nothing was changed."""


class DiskFull(StorageError):
    """The disk holding the database is full; the change was rolled back and nothing was lost."""


class DiskIOError(StorageError):
    """The disk holding the database failed a read, write or fsync; nothing was committed.
    A failed fsync is never retried as if it had succeeded: the connection is closed."""


class SchemaTooNew(StorageError):
    """The database was written by a newer pq; upgrade pq before using it."""
