"""Tasks: your functions, enqueued from your code and run by pq's consumers.

    import pqcore as pq

    app = pq.App()                      # PQ_DB, or a path, sqlite:///..., postgresql://...

    @app.task(queue="email", max_attempts=3, priority=5)
    def send_welcome(user_id: int, locale: str = "en") -> dict:
        ...

    handle = send_welcome.enqueue(42, locale="de")   # checked here, stored as JSON
    handle.wait(timeout=30)                          # the return value, or TaskFailed

``pq consumer --tasks myapp.tasks`` imports the modules named and runs their tasks (the
design's job files stay the default for every other payload). A task's return value is
stored with its job (``Job.result``); an exception fails the attempt and the job is
retried with backoff up to ``max_attempts``, unless the task declared it not worth
retrying (``no_retry_on=``, ``retry_on=``, or ``raise NotRetryable(...)``). A task
declared with ``context=True`` gets a ``TaskContext`` first: ``ctx.progress(...)``,
``ctx.complete_in(conn)``. Enqueue options: ``dedupe_key=``, ``after=[handles]``,
``on_dependency_failure=``, ``concurrency_key=``, ``connection=`` (your own open
transaction); ``task.options(queue=, priority=, max_attempts=)`` for one call.
``with app.inline():`` runs tasks at once in the caller's process (pqcore.inline).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import inspect
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from pqcore import taskcall
from pqcore.config import QueueSettings
from pqcore.exceptions import InvalidArgument, TaskFailed, WaitTimeout
from pqcore.models import EnqueueRequest, Job
from pqcore.states import JobState
from pqcore.validation import check_limit, check_queue, finite

if TYPE_CHECKING:
    from pqcore.inline import InlineRunner
    from pqcore.queue import Queue

P = ParamSpec("P")
R = TypeVar("R")
# Keyword arguments of enqueue() that are options, not the task's arguments: a task may
# not name a parameter so (checked when it is declared).
ENQUEUE_OPTIONS = frozenset(
    {"dedupe_key", "after", "on_dependency_failure", "concurrency_key", "connection"}
)
ERRORS = tuple[type[BaseException], ...]


class NotRetryable(Exception):
    """Raised by a task: this attempt failed for good, retrying cannot help (dead letter)."""


# Every task declared in this process, by name: what a consumer runs.
_REGISTRY: dict[str, Task[..., Any]] = {}
_REGISTRY_LOCK = threading.Lock()


def registered(name: str) -> Task[..., Any] | None:
    """The task declared under ``name`` in this process, if any."""
    return _REGISTRY.get(name)


def declared_names() -> list[str]:
    """Every task declared in this process."""
    return sorted(_REGISTRY)


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    queue: str = "default"
    priority: int = 0
    max_attempts: int | None = None  # None: the queue's default (PQ_MAX_ATTEMPTS)
    retry_on: ERRORS | None = None  # only these are retried (None: every error is)
    no_retry_on: ERRORS = ()  # never retried
    context: bool = False  # the function takes a TaskContext first

    def __post_init__(self) -> None:
        check_queue(self.queue)
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            raise InvalidArgument("priority must be an integer")
        if self.max_attempts is not None:
            check_limit(self.max_attempts, 1000, minimum=1)
        for errors in (self.retry_on or (), self.no_retry_on):
            if not all(isinstance(e, type) and issubclass(e, BaseException) for e in errors):
                raise InvalidArgument("retry_on/no_retry_on take exception classes")


class App:
    """Tasks and the queue they are enqueued on. ``queue``: a ``Queue``, or where to open
    one (a path or URL; None: ``PQ_DB``), opened on first use."""

    def __init__(self, queue: Queue | str | None = None, *, settings: QueueSettings | None = None):
        self._queue: Queue | None = None if isinstance(queue, str | None) else queue
        self._where = queue if isinstance(queue, str) else None
        self._settings = settings
        self._lock = threading.Lock()
        self._inline: InlineRunner | None = None
        self.tasks: dict[str, Task[..., Any]] = {}

    def __repr__(self) -> str:
        return f"App({self._where or self._queue or 'PQ_DB'!r}, tasks={sorted(self.tasks)})"

    @property
    def queue(self) -> Queue:
        if self._queue is None:
            with self._lock:
                if self._queue is None:
                    from pqcore import open_queue

                    self._queue = open_queue(self._where, settings=self._settings)
        return self._queue

    def use(self, queue: Queue | str | None) -> None:
        """Enqueue on another queue from now on (a test's database, say)."""
        self.close()
        self._queue = None if isinstance(queue, str | None) else queue
        self._where = queue if isinstance(queue, str) else None

    def close(self) -> None:
        """Close the queue this app opened itself (not one it was given)."""
        if self._queue is not None and self._where is not None:
            self._queue.close()
        if self._where is not None:
            self._queue = None

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...
    @overload
    def task(
        self, fn: None = None, /, *, name: str | None = ..., queue: str = ..., priority: int = ...,
        max_attempts: int | None = ..., retry_on: ERRORS | None = ...,
        no_retry_on: ERRORS = ..., context: bool = ...,
    ) -> Callable[[Callable[P, R]], Task[P, R]]: ...  # fmt: skip
    def task(
        self, fn: Callable[..., Any] | None = None, /, *, name: str | None = None,
        queue: str = "default", priority: int = 0, max_attempts: int | None = None,
        retry_on: ERRORS | None = None, no_retry_on: ERRORS = (), context: bool = False,
    ) -> Any:  # fmt: skip
        """Declare a task: ``@app.task`` or ``@app.task(queue=..., max_attempts=...)``.
        ``name``: what consumers find it by (default ``module.function``)."""
        options = TaskOptions(queue, priority, max_attempts, retry_on, tuple(no_retry_on), context)

        def declare(function: Callable[..., Any]) -> Task[..., Any]:
            task = Task(self, function, name or _default_name(function), options)
            _register(task)
            self.tasks[task.name] = task
            return task

        return declare(fn) if fn is not None else declare

    def handle(self, job: int | Job) -> TaskHandle:
        """A handle on a job enqueued earlier (by id), e.g. to wait for it."""
        found = job if isinstance(job, Job) else self.queue.get(job)
        return TaskHandle(self, found)

    def enqueue_many(
        self, requests: Iterable[EnqueueRequest], *, connection: object = None
    ) -> list[TaskHandle]:
        """Many calls (``task.request(...)``) in one transaction: all of them or none."""
        if self._inline is not None:
            return [self._inline.run_request(request) for request in requests]
        jobs = self.queue.enqueue_many(list(requests), connection=connection)
        return [TaskHandle(self, job) for job in jobs]

    @contextlib.contextmanager
    def inline(self) -> Iterator[InlineRunner]:
        """Run tasks in the caller's process at once, for your own tests (pqcore.inline)."""
        from pqcore.inline import InlineRunner

        previous, self._inline = self._inline, InlineRunner()
        try:
            yield self._inline
        finally:
            self._inline = previous

    def connect(self) -> Any:
        """A new connection of your own to the queue's database (sqlite3 or psycopg), for
        writes that commit with a job: ``enqueue(..., connection=conn)`` and
        ``ctx.complete_in(conn)``. You close it."""
        queue = self.queue
        if queue.backend == "postgresql":
            import psycopg

            return psycopg.connect(queue.driver.url)  # type: ignore[attr-defined]
        timeout = queue.settings.busy_timeout_ms / 1000
        return sqlite3.connect(queue.driver.path, timeout=timeout)  # type: ignore[attr-defined]

    def work(
        self, *, queues: Sequence[str] | None = None, consumer_id: str = "app-worker",
        idle_timeout: float = 0.0, lease_seconds: float | None = None,
    ) -> int:  # fmt: skip
        """Run task jobs in this process until none has come for ``idle_timeout`` seconds;
        returns how many ran. For scripts and tests: it has no heartbeat, so a task must
        end within its lease; production runs ``pq consumer --tasks``. ``queues``: those
        of this app's tasks by default (a job there that is not a task fails)."""
        from pqcore.running import work

        names = list(queues) if queues else sorted({t.defaults.queue for t in self.tasks.values()})
        return work(self.queue, names or None, consumer_id, idle_timeout, lease_seconds)


class Task(Generic[P, R]):
    """A declared task. Calling it runs the function here and now; ``enqueue`` has a
    consumer run it."""

    def __init__(self, app: App, fn: Callable[P, R], name: str, options: TaskOptions):
        self.app = app
        self.fn = fn
        self.name = name
        self.defaults = options
        if inspect.iscoroutinefunction(fn):
            raise InvalidArgument(f"task {name} is a coroutine function: tasks are plain functions")
        parameters = list(inspect.signature(fn).parameters)
        if options.context and not parameters:
            raise InvalidArgument(f"task {name} takes a context, so it needs a first parameter")
        clash = ENQUEUE_OPTIONS & set(parameters[1:] if options.context else parameters)
        if clash:
            raise InvalidArgument(
                f"task {name}: parameter {sorted(clash)[0]!r} has the name of an enqueue"
                " option; rename it"
            )
        self.__wrapped__ = fn
        self.__doc__ = fn.__doc__

    def __repr__(self) -> str:
        return f"<task {self.name} queue={self.defaults.queue}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    def options(self, **changes: Any) -> Task[P, R]:
        """This task with another ``queue``, ``priority`` or ``max_attempts`` for the calls
        made through it (the same task, by name, for the consumer)."""
        unknown = set(changes) - {"queue", "priority", "max_attempts"}
        if unknown:
            raise InvalidArgument(f"options() takes queue, priority, max_attempts: not {unknown}")
        return Task(self.app, self.fn, self.name, dataclasses.replace(self.defaults, **changes))

    def payload(self, *args: Any, **kwargs: Any) -> str:
        """The job payload of this call, its arguments checked."""
        taskcall.bind(self.fn, self.name, args, kwargs, skip_first=self.defaults.context)
        return taskcall.encode(self.name, args, kwargs)

    def request(self, *args: Any, run_at: float | None = None, delay: float = 0.0,
                **kwargs: Any) -> EnqueueRequest:  # fmt: skip
        """The call as an ``EnqueueRequest`` (for ``app.enqueue_many``)."""
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in ENQUEUE_OPTIONS}
        if "connection" in options:
            raise InvalidArgument("connection= goes to enqueue() or app.enqueue_many()")
        after = options.pop("after", ())
        return EnqueueRequest(
            self.payload(*args, **kwargs),
            self.defaults.queue, self.defaults.priority, delay, run_at,
            max_attempts=self.defaults.max_attempts,
            after=tuple(after) if isinstance(after, Iterable) else (after,),
            **options,
        )  # fmt: skip

    def enqueue(self, *args: Any, **kwargs: Any) -> TaskHandle:
        """Have a consumer run ``fn(*args, **kwargs)``. Options (not passed to the task):
        ``dedupe_key``, ``after``, ``on_dependency_failure``, ``concurrency_key``,
        ``connection``."""
        return self._enqueue(args, kwargs, None, 0.0)

    def enqueue_at(self, when: float | dt.datetime, *args: Any, **kwargs: Any) -> TaskHandle:
        """Run not before ``when`` (epoch seconds, or an aware datetime)."""
        if isinstance(when, dt.datetime):
            if when.tzinfo is None:
                raise InvalidArgument("enqueue_at takes an aware datetime (with a timezone)")
            when = when.timestamp()
        return self._enqueue(args, kwargs, finite(when, "when"), 0.0)

    def enqueue_in(self, seconds: float, *args: Any, **kwargs: Any) -> TaskHandle:
        """Run not before ``seconds`` from now (the queue's clock)."""
        return self._enqueue(args, kwargs, None, finite(seconds, "seconds"))

    def _enqueue(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], run_at: float | None, delay: float
    ) -> TaskHandle:
        connection = kwargs.pop("connection", None)
        if self.app._inline is not None:
            return self.app._inline.run(self, args, kwargs)
        request = self.request(*args, run_at=run_at, delay=delay, **kwargs)
        [job] = self.app.queue.enqueue_many([request], connection=connection)
        return TaskHandle(self.app, job)

    def should_retry(self, error: BaseException) -> bool:
        """Whether a failed attempt is retried (with backoff, attempts permitting)."""
        if isinstance(error, NotRetryable | InvalidArgument):
            return False
        if self.defaults.no_retry_on and isinstance(error, self.defaults.no_retry_on):
            return False
        return self.defaults.retry_on is None or isinstance(error, self.defaults.retry_on)


class TaskHandle:
    """A job enqueued for a task: its id, its state, its outcome."""

    def __init__(self, app: App, job: Job):
        self.app = app
        self.id = job.id
        self.job = job  # as last read

    def __repr__(self) -> str:
        return f"<TaskHandle job={self.id} {self.job.status.value}>"

    def refresh(self) -> Job:
        self.job = self.app.queue.get(self.id)
        return self.job

    @property
    def status(self) -> JobState:
        return self.refresh().status

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the job to finish: its result, or ``TaskFailed`` (dead-lettered or
        cancelled: ``error`` holds its last error), or ``WaitTimeout``. A job waiting for
        a retry is not finished."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.005
        while True:
            job = self.refresh()
            if job.status is JobState.DONE:
                return job.result_value()
            if job.status.is_final:
                call = _call_of(job)
                raise TaskFailed(job.id, job.status.value, job.error, call.task if call else None)
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"job {job.id} is still {job.status.value} after {timeout}s")
            wait = pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic()))
            time.sleep(wait)
            pause = min(pause * 2, 0.2)


def _call_of(job: Job) -> taskcall.TaskCall | None:
    try:
        return taskcall.decode(job.data)
    except InvalidArgument:
        return None


def _default_name(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _register(task: Task[..., Any]) -> None:
    with _REGISTRY_LOCK:
        known = _REGISTRY.get(task.name)
        if known is not None and _default_name(known.fn) != _default_name(task.fn):
            raise InvalidArgument(
                f"two tasks are named {task.name!r} ({_default_name(known.fn)} and"
                f" {_default_name(task.fn)}): give one a name= of its own"
            )
        _REGISTRY[task.name] = task  # the same function again (a reload) replaces it
