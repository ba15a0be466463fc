"""Inline mode, for your own tests: tasks run at once, in the caller's process, with no
queue, database or consumer.

    def test_welcome_mail():
        with app.inline() as inline:
            handle = send_welcome.enqueue(42, locale="de")
            assert handle.wait() == {"sent": True}
            assert inline.handles[0].job.attempts == 1

What is the same as with consumers: arguments are bound, type-checked and JSON-encoded
exactly as ``enqueue`` does (a bad one raises ``InvalidArgument`` in the caller), and the
task receives what JSON gives back; a failure is retried up to ``max_attempts`` when the
task's declaration says it is retryable (``NotRetryable``, ``no_retry_on``, ``retry_on``),
at once instead of after a backoff; the result must be JSON and within the payload limit;
``after=`` follows the same policy (a dependency that did not end done cancels the job, or
it runs anyway with ``on_dependency_failure="run"``); ``handle.wait()`` returns the result
or raises ``TaskFailed`` (its ``__cause__`` is the task's own exception here).

What does not apply: time (``enqueue_at``/``enqueue_in`` run at once), dedupe keys and
concurrency keys (every job is finished before the next call), leases. ``ctx.progress``
records into ``handle.progress``; ``ctx.complete_in(conn)`` records the result and marks the
job done, and your writes on ``conn`` commit when you commit them.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from pqcore import taskcall
from pqcore.config import QueueSettings
from pqcore.exceptions import InvalidArgument, TaskFailed
from pqcore.models import EnqueueRequest, Job
from pqcore.running import describe, encode_result, invoke
from pqcore.states import DependencyFailure, JobState
from pqcore.tasks import ENQUEUE_OPTIONS, Task, TaskHandle, registered
from pqcore.validation import check_after, check_dependency_failure, check_progress


class InlineHandle(TaskHandle):
    """A task call that has already run: ``job`` is what a job would look like now."""

    def __init__(self, task: Task[..., Any], job: Job) -> None:
        super().__init__(task.app, job)
        self.task = task
        self.progress: list[tuple[float, str | None]] = []  # every report, in order
        self.exception: BaseException | None = None  # the last attempt's, if it failed

    def refresh(self) -> Job:
        return self.job

    def wait(self, timeout: float | None = None) -> Any:
        if self.job.status is JobState.DONE:
            return self.job.result_value()
        raise TaskFailed(
            self.id, self.job.status.value, self.job.error, self.task.name
        ) from self.exception

    def _update(self, **changes: Any) -> None:
        values = {**self.job.to_dict(), "status": self.job.status, **changes}
        self.job = Job(**values)


class InlineContext:
    """``TaskContext`` for inline runs."""

    def __init__(self, handle: InlineHandle) -> None:
        self.handle = handle
        self.job = handle.job
        self.task = handle.task
        self.completed_in = False
        self.result: Any = None

    @property
    def job_id(self) -> int:
        return self.job.id

    @property
    def attempt(self) -> int:
        return self.job.attempts

    def check_lease(self) -> None:
        """Inline runs hold no lease: nothing to check."""

    def progress(self, fraction: float, message: str | None = None) -> None:
        value, text = check_progress(fraction, message)
        self.handle.progress.append((value, text))
        self.handle._update(progress=value, progress_message=text, progress_at=time.time())

    def complete_in(self, connection: object, result: Any = None) -> None:
        self.completed_in = True
        self.result = result


class InlineRunner:
    """What ``app.inline()`` yields: every call it ran, in order (``handles``)."""

    def __init__(self, settings: QueueSettings | None = None) -> None:
        self.settings = settings or QueueSettings.from_env()
        self.handles: list[InlineHandle] = []
        self._ids = itertools.count(1)

    def run(
        self, task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> InlineHandle:
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in ENQUEUE_OPTIONS}
        payload = task.payload(*args, **kwargs)  # the checks enqueue makes
        call = taskcall.decode(payload)  # and what a consumer would get back
        assert call is not None
        after = self._dependencies(options.get("after", ()))
        policy = check_dependency_failure(options.get("on_dependency_failure", "cancel"))
        now = time.time()
        handle = InlineHandle(task, Job(
            id=next(self._ids), queue=task.defaults.queue, data=payload,
            status=JobState.PENDING, priority=task.defaults.priority, run_at=now, attempts=0,
            max_attempts=task.defaults.max_attempts or self.settings.max_attempts,
            error=None, consumer_id=None, lease_token=None, lease_expires_at=None,
            dedupe_key=options.get("dedupe_key"), created_at=now, updated_at=now,
            started_at=None, finished_at=None, concurrency_key=options.get("concurrency_key"),
        ))  # fmt: skip
        self.handles.append(handle)
        failed = [d for d in after if d.job.status is not JobState.DONE]
        if failed and policy is DependencyFailure.CANCEL:
            why = f"job {failed[0].id}, which it depends on, ended {failed[0].job.status.value}"
            handle._update(status=JobState.CANCELLED, error=why, finished_at=time.time())
            return handle
        self._attempts(handle, call)
        return handle

    def run_request(self, request: EnqueueRequest) -> InlineHandle:
        """A call made with ``task.request(...)`` (``app.enqueue_many``)."""
        call = taskcall.decode(request.data)
        task = registered(call.task) if call is not None else None
        if call is None or task is None:
            raise InvalidArgument("inline mode runs task calls only (task.request(...))")
        options = {"after": request.after, "on_dependency_failure": request.on_dependency_failure,
                   "dedupe_key": request.dedupe_key}  # fmt: skip
        return self.run(task, tuple(call.args), {**call.kwargs, **options})

    def _dependencies(self, after: Any) -> list[InlineHandle]:
        known = {h.id: h for h in self.handles}
        ids = check_after(after)
        missing = [i for i in ids if i not in known]
        if missing:
            raise InvalidArgument(
                f"after= names jobs that do not exist: {', '.join(map(str, missing[:10]))}"
                " (inline mode knows only the calls it ran)"
            )
        return [known[i] for i in ids]

    def _attempts(self, handle: InlineHandle, call: taskcall.TaskCall) -> None:
        task = handle.task
        while True:
            handle._update(status=JobState.PROCESSING, attempts=handle.job.attempts + 1,
                           started_at=time.time(), progress=None)  # fmt: skip
            ctx = InlineContext(handle)
            try:
                value = invoke(task, call, ctx)
                if ctx.completed_in:
                    value = ctx.result
                limit = self.settings.max_payload_bytes
                result = encode_result(task, handle.id, value, limit)
            except Exception as error:
                handle.exception = error
                retry = task.should_retry(error) and handle.job.attempts < handle.job.max_attempts
                if retry:
                    continue
                handle._update(status=JobState.PERMANENTLY_FAILED, error=describe(error),
                               finished_at=time.time())  # fmt: skip
                return
            handle.exception = None
            handle._update(status=JobState.DONE, result=result, error=None,
                           finished_at=time.time())  # fmt: skip
            return
