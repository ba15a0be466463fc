"""Running a claimed task job: the same code for ``pq consumer --tasks``, ``App.work`` and
(the parts that apply) the inline mode.

``run(queue, job)`` decodes the payload, finds the task declared under its name, calls it
and says what to report (``RunOutcome``); it never writes an outcome itself, except the
one a task writes with ``ctx.complete_in(conn)`` in its own transaction. How an
exception maps: ``LeaseLost`` (the lease was taken away: report nothing), the task's
retry declaration (``Task.should_retry``), and failures no retry can fix: an unknown
payload, arguments that no longer bind, a result that is not JSON or too large. A task
not declared in this process fails retryably (another consumer may know it, and the
backoff keeps this one from spinning on it).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

from pqcore import taskcall
from pqcore.exceptions import InvalidArgument, LeaseLost, PQError, StorageError
from pqcore.models import Job
from pqcore.queue import Queue
from pqcore.states import JobState
from pqcore.tasks import Task, registered
from pqcore.validation import MAX_ERROR_TEXT, check_progress, encode_json
from pqcore.worker import Worker

log = logging.getLogger("pqcore.tasks")
PROGRESS_INTERVAL = 0.5  # seconds between progress writes of one job (the last one always)


class RunKind(enum.StrEnum):
    DONE = "done"  # report done, with ``result``
    FAILED = "failed"  # report failed (``retryable`` or not), with ``error``
    LOST = "lost"  # the lease is gone: report nothing
    COMPLETED_IN = "completed_in"  # done in the task's own transaction: nothing to report


class RunOutcome:
    """What to report: ``value`` is the task's return value, ``result`` its JSON text."""

    __slots__ = ("error", "kind", "result", "retryable", "task", "value")

    def __init__(
        self, kind: RunKind, task: str | None, *, result: str | None = None,
        value: Any = None, error: str | None = None, retryable: bool = True,
    ) -> None:  # fmt: skip
        self.kind, self.task, self.result, self.value = kind, task, result, value
        self.error, self.retryable = error, retryable

    def __repr__(self) -> str:
        return f"RunOutcome({self.kind.value}, {self.task}, error={self.error!r:.80})"


class TaskContext:
    """What a task declared with ``context=True`` gets as its first argument."""

    def __init__(
        self, queue: Queue, job: Job, task: Task[..., Any], *,
        lease_lost: threading.Event | None = None,
    ) -> None:  # fmt: skip
        self.queue = queue
        self.job = job
        self.task = task
        self._lease_lost = lease_lost
        self._progress_at = 0.0
        self.completed_in = False

    @property
    def job_id(self) -> int:
        return self.job.id

    @property
    def attempt(self) -> int:
        """1 for the first try."""
        return self.job.attempts

    def check_lease(self) -> None:
        """Raise ``LeaseLost`` if this consumer knows its lease is gone (stop working)."""
        if self._lease_lost is not None and self._lease_lost.is_set():
            raise LeaseLost(self.job.id)

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report how far the task got (0..1, a short text): written at most every
        ``PROGRESS_INTERVAL`` seconds (1.0 always), under the lease. ``LeaseLost`` if the
        lease is gone; a database error only logs (progress is not worth failing for)."""
        value, text = check_progress(fraction, message)
        self.check_lease()
        now = time.monotonic()
        if value < 1.0 and now - self._progress_at < PROGRESS_INTERVAL:
            return
        self._progress_at = now
        try:
            self.queue.progress(self.job.id, self._token, value, text)
        except StorageError as error:
            log.warning("progress of job %s not written: %s", self.job.id, error)

    def complete_in(self, connection: object, result: Any = None) -> None:
        """Complete this job inside your own open transaction on ``connection`` (to the
        queue's database), storing ``result``: your writes and the completion then
        commit together, or neither does. Commit before the task returns (what it returns
        afterwards is not stored). ``LeaseLost`` if the lease is gone: the transaction is
        doomed then, and the task should let the exception go."""
        self.check_lease()
        self.queue.complete(self.job.id, self._token, result=result, connection=connection)
        self.completed_in = True

    @property
    def _token(self) -> str:
        if self.job.lease_token is None:
            raise InvalidArgument(f"job {self.job.id} is not held (no lease token)")
        return self.job.lease_token


def run(queue: Queue, job: Job, *, lease_lost: threading.Event | None = None) -> RunOutcome:
    """Run the task a claimed job names; what to report for it."""
    try:
        call = taskcall.decode(job.data)
    except InvalidArgument as error:
        return RunOutcome(RunKind.FAILED, None, error=str(error), retryable=False)
    if call is None:
        return RunOutcome(RunKind.FAILED, None, retryable=False,
                          error="not a task payload (this worker runs tasks only)")  # fmt: skip
    task = registered(call.task)
    if task is None:
        return RunOutcome(RunKind.FAILED, call.task, error=(
            f"task {call.task} is not declared in this consumer: start it with"
            " --tasks naming the module that declares it"))  # fmt: skip
    ctx = TaskContext(queue, job, task, lease_lost=lease_lost)
    try:
        value = invoke(task, call, ctx)
    except BaseException as error:
        if ctx.completed_in and _is_done(queue, job):
            return RunOutcome(RunKind.COMPLETED_IN, task.name)  # raised after its commit
        if isinstance(error, LeaseLost):
            return RunOutcome(RunKind.LOST, task.name, error=str(error))
        if not isinstance(error, Exception):
            raise  # KeyboardInterrupt, SystemExit: not the task's failure
        return failure(task, error)
    if ctx.completed_in:
        if _is_done(queue, job):
            return RunOutcome(RunKind.COMPLETED_IN, task.name)
        return RunOutcome(
            RunKind.FAILED,
            task.name,
            error=("the task called complete_in() but returned before that transaction committed"),
        )
    try:
        result = encode_result(task, job.id, value, queue.settings.max_payload_bytes)
    except InvalidArgument as error:
        return RunOutcome(RunKind.FAILED, task.name, error=str(error), retryable=False)
    return RunOutcome(RunKind.DONE, task.name, result=result, value=value)


def invoke(task: Task[..., Any], call: taskcall.TaskCall, ctx: Any) -> Any:
    """Call the task with the decoded arguments (and the context first, if it takes one);
    arguments that no longer bind (the function changed) are not retryable."""
    try:
        taskcall.bind(task.fn, task.name, call.args, call.kwargs, skip_first=task.defaults.context)
    except InvalidArgument as error:
        raise InvalidArgument(f"the job's arguments no longer fit the task: {error}") from None
    if task.defaults.context:
        return task.fn(ctx, *call.args, **call.kwargs)
    return task.fn(*call.args, **call.kwargs)


def encode_result(task: Task[..., Any], job_id: int, value: Any, limit: int) -> str | None:
    """The return value as stored (None stores nothing); ``InvalidArgument`` if it is not
    JSON or larger than the payload limit."""
    if value is None:
        return None
    return encode_json(value, f"the result of task {task.name} (job {job_id})", limit)


def failure(task: Task[..., Any], error: Exception) -> RunOutcome:
    return RunOutcome(
        RunKind.FAILED, task.name, error=describe(error), retryable=task.should_retry(error)
    )


def describe(error: BaseException) -> str:
    """``Type: message``, then the innermost frames of the traceback (clipped)."""
    head = f"{type(error).__name__}: {error}"
    frames = traceback.format_exception(error)
    text = head + "\n" + "".join(frames[-3:])
    return text if len(text) <= MAX_ERROR_TEXT else text[: MAX_ERROR_TEXT - 20] + "..."


def _is_done(queue: Queue, job: Job) -> bool:
    """Whether the task's own transaction committed the completion. If so, and jobs wait
    for this one, wake consumers for them now (SQLite's doorbell did not hear that commit)."""
    try:
        found = queue.get(job.id)
        if found.status is JobState.DONE and found.has_dependents:
            queue.wake([found.queue])
        return found.status is JobState.DONE
    except PQError:
        return False


def work(
    queue: Queue, queues: Sequence[str] | None, consumer_id: str, idle_timeout: float,
    lease_seconds: float | None,
) -> int:  # fmt: skip
    """``App.work``: claim, run and report task jobs until none comes for a while."""
    count = 0
    with Worker(queue, consumer_id, batch=1, queues=queues, lease_seconds=lease_seconds) as worker:
        while True:
            job = worker.next(timeout=idle_timeout)
            if job is None:
                worker.flush()  # outcomes still buffered may release jobs waiting for them
                job = worker.next(timeout=0)
                if job is None:
                    return count
            report(worker, job, run(queue, job))
            count += 1


def report(worker: Worker, job: Job, outcome: RunOutcome) -> None:
    """Hand a run's outcome to a worker (nothing when there is nothing to report)."""
    if outcome.kind is RunKind.DONE:
        worker.done(job, result=outcome.value)
    elif outcome.kind is RunKind.FAILED:
        worker.fail(job, outcome.error or "failed", retryable=outcome.retryable)
