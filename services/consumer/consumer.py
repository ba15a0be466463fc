"""The consumer loop: claim a job under a lease, run its handler, report the outcome.

* The loop runs on pqcore's batching ``Worker``: outcomes are written together with
  the next claim, or by the worker's flusher within ``max_ack_delay`` (50 ms), so a
  busy consumer commits once per batch instead of twice per job. It claims only as
  many jobs as it expects to start within ``PREFETCH_SECONDS`` (one at a time for
  long jobs, up to ``--batch`` for short ones), so no consumer hoards work.
* A handler's file writes (the completion line) are fsynced a batch at a time, just
  before the worker writes the batch's outcomes (``durability``): on the disk before
  the job is done, without one fsync per job on the loop's thread.
* A background thread extends the lease every ``lease/3`` seconds while a job runs
  and refreshes this consumer's row in ``consumers``; it also enforces the grace
  period on shutdown.
* A lease lost (rescued by the manager, marked by an operator) is never fought: the
  outcome is dropped, ``pq_lease_lost_total`` counts it, nothing more is written.
* An operator's cancel of the running job reaches the heartbeat thread as
  ``JobCancelled``: the handler's ``ctx.sleep``/``ctx.check_lease`` raise
  ``CancelledDuringWork``, nothing more is written, no outcome is reported,
  ``pq_jobs_cancelled_total`` counts it and the log names the operator. A handler that
  ignores it is fenced: its outcome is dropped, or refused by the database.
* SIGTERM: no new claims; the current job finishes if it can within the grace
  period, otherwise it is released back to ``pending`` at once.
* Task jobs (``task:{...}`` payloads, ``pq consumer --tasks myapp.tasks``) run through
  pqcore's task runner (``pqcore.running``): the return value is stored as the job's
  result, an exception fails the job retryably or not as the task declared, a lease lost
  while it runs (``ctx.progress``, ``ctx.check_lease``) reports nothing, and a task that
  completed its job in its own transaction (``ctx.complete_in``) is counted, not reported.
  Every other payload goes to the handlers (the design's job files by default).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import random
import socket
import threading
import time
from pathlib import Path
from typing import Any

from loguru import logger

from pqcore import (
    ConsumerState,
    Job,
    JobCancelled,
    JobState,
    LeaseLost,
    Outcome,
    OutcomeKind,
    PQError,
    Queue,
    StorageError,
    Transition,
    running,
    taskcall,
)
from pqcore.worker import DEFAULT_BATCH, DEFAULT_PREFETCH_SECONDS, Worker
from services.common import liveness, storage
from services.common.signals import StopRequest
from services.consumer import durability, handlers, metrics

IMMEDIATE_RETRIES = 3
IMMEDIATE_BACKOFF_SECONDS = 0.1  # doubled per retry, with jitter
IDLE_WAIT_SECONDS = 0.5  # how long one wait_for_jobs blocks before the loop looks at signals
TICK_SECONDS = 0.1  # the heartbeat thread's clock
# The Worker's default (1 s): claim what this consumer expects to start within it.
PREFETCH_SECONDS = DEFAULT_PREFETCH_SECONDS
MAX_ACK_DELAY = 0.05  # an outcome is written at most this long after the handler returns


# A job file's write failing with these is the disk's fault: counted with the queue's
# storage errors (pq_storage_errors_total{kind="job_file"}) as well as failing the job.
JOB_FILE_STORAGE_ERRNOS = frozenset({errno.EIO, errno.ENOSPC, errno.EROFS, errno.EDQUOT})


@dataclasses.dataclass(frozen=True)
class ConsumerSettings:
    jobs_dir: Path
    work_min: float = 7.0
    work_max: float = 15.0
    lease_seconds: float = 30.0
    grace_seconds: float = 15.0
    queues: tuple[str, ...] | None = None  # None: every queue
    batch: int = DEFAULT_BATCH  # the most jobs one claim takes (cli's --batch says why)

    def __post_init__(self) -> None:
        if not 0 <= self.work_min <= self.work_max:
            raise ValueError("work times need 0 <= work-min <= work-max")
        if not self.lease_seconds > 0:
            raise ValueError("the lease must be positive")
        if self.grace_seconds < 0:
            raise ValueError("the grace period must not be negative")
        if not 1 <= self.batch <= 1000:
            raise ValueError("the batch must be from 1 to 1000")

    @property
    def final_reserve(self) -> float:
        """Of the grace period, what the last writes get after the job stops."""
        return min(3.0, max(1.0, self.grace_seconds * 0.2))

    @property
    def stop_deadline(self) -> float:
        """The process exits at most this long after SIGTERM, whatever the database does."""
        return max(self.grace_seconds, self.final_reserve)

    @property
    def heartbeat_interval(self) -> float:
        return self.lease_seconds / 3

    def check_liveness_timeout(self, timeout: float) -> None:
        """Beats come every idle wait, and every heartbeat while a job runs."""
        longest_gap = max(IDLE_WAIT_SECONDS, self.heartbeat_interval)
        if timeout <= longest_gap:
            raise ValueError(
                f"liveness-timeout ({timeout}s) must exceed the heartbeat interval"
                f" (lease/3 = {self.heartbeat_interval:g}s) and the idle wait"
                f" ({IDLE_WAIT_SECONDS}s), or a healthy consumer is reported dead"
            )


@dataclasses.dataclass
class HeldJob:
    """The job being worked on, shared with the heartbeat thread."""

    job: Job
    lease_lost: threading.Event = dataclasses.field(default_factory=threading.Event)
    cancelled: threading.Event = dataclasses.field(default_factory=threading.Event)
    last_beat: float = dataclasses.field(default_factory=time.monotonic)
    loss_counted: bool = False
    cancel_noted: bool = False

    @property
    def token(self) -> str:
        return self.job.lease_token or ""

    def note_lease_lost(self, where: str) -> None:
        self.lease_lost.set()
        if self.cancelled.is_set():
            return  # the cancel was logged and counted as such
        if not self.loss_counted:
            self.loss_counted = True
            metrics.LEASE_LOST.inc()
            logger.warning(
                "lease lost job={} attempt={} ({}): another consumer or an operator"
                " owns it now; writing nothing more",
                self.job.id,
                self.job.attempts,
                where,
            )


class Consumer:
    def __init__(
        self,
        queue: Queue,
        settings: ConsumerSettings,
        *,
        consumer_id: str,
        stop: StopRequest | None = None,
    ) -> None:
        self.queue = queue
        self.settings = settings
        self.consumer_id = consumer_id
        self.stop = stop or StopRequest()
        self.jobs_done = 0
        self.jobs_failed = 0
        self._lock = threading.Lock()
        self._current: HeldJob | None = None
        self._pending: dict[int, HeldJob] = {}  # outcomes handed to the worker, not yet written
        self._finished = threading.Event()
        self.sync = durability.BatchedSync(self._count_disk_error)
        self.worker: Worker

    # ------------------------------------------------------------ lifecycle

    def run(self) -> int:
        if not self._register_until_stopped():
            return 0
        beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        beat.start()
        try:
            self._loop()
        finally:
            self._finished.set()
            beat.join(timeout=5)
            self._deregister()
        logger.info(
            "consumer {} stopped: done={} failed={}",
            self.consumer_id,
            self.jobs_done,
            self.jobs_failed,
        )
        return 0

    def _register_until_stopped(self) -> bool:
        """Register, retrying while the database is unavailable (a consumer started
        before its database, or during an outage, waits rather than crash-looping).
        False if stopped first."""
        delay = 0.5
        while not self.stop.requested:
            try:
                self._register()
                return True
            except StorageError as error:
                logger.warning("cannot register yet: {}; retrying in {:.1f}s", error, delay)
                liveness.beat()
                self.stop.wait(delay)
                delay = min(delay * 2, 10.0)
        return False

    def _register(self) -> None:
        queues = ",".join(self.settings.queues) if self.settings.queues else "*"
        self.queue.consumer_register(
            self.consumer_id, host=socket.gethostname(), pid=os.getpid(), queues=queues
        )

    def _deregister(self) -> None:
        try:
            self.queue.consumer_deregister(self.consumer_id)
        except PQError as error:
            logger.warning("could not deregister {}: {}", self.consumer_id, error)

    def grace_left(self) -> float:
        """How long the current job may still run: the grace period less what the last
        writes (release, outcomes, deregistering) are given (``final_reserve``)."""
        if self.stop.requested_at is None:
            return float("inf")
        work_grace = self.settings.grace_seconds - self.settings.final_reserve
        return work_grace - (time.monotonic() - self.stop.requested_at)

    def shutdown_left(self) -> float:
        """How long the last writes may still take before the stop deadline."""
        if self.stop.requested_at is None:
            return float("inf")
        return self.settings.stop_deadline - (time.monotonic() - self.stop.requested_at)

    # ------------------------------------------------------------ main loop

    def _loop(self) -> None:
        self.worker = Worker(
            self.queue,
            self.consumer_id,
            batch=self.settings.batch,
            queues=self.settings.queues,
            lease_seconds=self.settings.lease_seconds,
            max_ack_delay=MAX_ACK_DELAY,
            prefetch_seconds=PREFETCH_SECONDS,
            on_settled=self._settled,
            before_write=self.sync.before_write,
        )
        delay = 0.2
        try:
            while not self.stop.requested:
                liveness.beat()
                try:
                    job = self.worker.next(timeout=IDLE_WAIT_SECONDS)
                    delay = 0.2
                except StorageError as error:
                    # Outcomes stay with the worker and are written on the next try.
                    logger.warning("database error: {}; retrying in {:.1f}s", error, delay)
                    self.stop.wait(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                if job is None:
                    continue
                metrics.child(metrics.JOBS_CLAIMED, job.queue).inc()
                # DEBUG: one INFO line per job (its outcome) is what an operator reads;
                # the claim line as well cost a consumer about 8 % of its CPU at zero work time.
                logger.debug(
                    "claimed job={} attempt={}/{} payload={}",
                    job.id,
                    job.attempts,
                    job.max_attempts,
                    job.data,
                )
                self._process(job)
        finally:
            self._close_worker()
            self.sync.close()

    def _close_worker(self) -> None:
        """Give back jobs claimed and never started; write every outcome. An unreachable
        database gets a bounded number of tries: what is not written then is rescued
        once its lease expires (the handler's effect, if any, is recognised on rerun)."""
        delay = 0.2
        while True:
            try:
                self.worker.close()
                return
            except StorageError as error:
                if delay > 5 or self.shutdown_left() <= delay:
                    logger.error("could not write the last outcomes: {}; leases expire", error)
                    return
                logger.warning("database error while closing: {}; retrying", error)
                time.sleep(delay)
                delay *= 2

    def _settled(self, outcome: Outcome, job: Job | None) -> None:
        """The worker wrote an outcome (``job``), or refused it: the lease was lost."""
        # Called from the worker's flusher thread or the main loop: the counters change
        # under the lock.
        with self._lock:
            held = self._pending.pop(outcome.job_id, None)
        if held is None:
            return
        if job is None:
            # Refused: the lease is gone. An operator's cancel that came after the last
            # heartbeat is told apart from other losses by the job's state.
            if self._was_cancelled(held.job.id):
                self._note_cancelled(held, f"{outcome.kind} refused")
                metrics.LEASE_LOST.inc()  # the late outcome the database refused: the fence
            else:
                held.note_lease_lost(f"{outcome.kind} rejected")
            return
        with self._lock:
            if outcome.kind == OutcomeKind.RELEASE:
                metrics.child(metrics.JOBS_RELEASED, held.job.queue).inc()
                logger.warning("released job={} back to pending: {}", held.job.id, outcome.error)
            else:
                self._record(held.job, outcome)

    def _record(self, job: Job, outcome: Outcome) -> None:
        if outcome.kind == OutcomeKind.DONE:
            self.jobs_done += 1
            metrics.child(metrics.JOBS_COMPLETED, job.queue).inc()
            logger.info("completed job={} attempt={}", job.id, job.attempts)
        else:
            self.jobs_failed += 1
            retryable = "true" if outcome.retryable else "false"
            metrics.child(metrics.JOBS_FAILED, job.queue, retryable).inc()
            logger.warning(
                "failed job={} attempt={} retryable={}: {}",
                job.id,
                job.attempts,
                retryable,
                outcome.error,
            )

    # ------------------------------------------------------------ one job

    def _process(self, job: Job) -> None:
        """Run the job's handler and hand its outcome to the worker (nothing when the
        lease was lost: there is nothing left to report)."""
        if taskcall.is_task_payload(job.data):
            self._process_task(job)
            return
        held = HeldJob(job)
        with self._lock:
            self._current = held
        metrics.BUSY.set(1)
        kind, handler, argument = handlers.resolve(job.data)
        ctx = handlers.HandlerContext(
            job=job,
            argument=argument,
            jobs_dir=self.settings.jobs_dir,
            consumer_id=self.consumer_id,
            work_seconds=random.uniform(self.settings.work_min, self.settings.work_max),
            stop_requested=lambda: self.stop.requested,
            grace_left=self.grace_left,
            lease_lost=held.lease_lost,
            cancelled=held.cancelled,
            sync_later=self.sync.deferrer(job.id),
        )
        started = time.monotonic()
        try:
            if handlers.is_builtin(handler):  # starts no programs: spare the two syscalls
                self._run_with_retries(handler, ctx)
            else:
                with self.stop.signals_delivered_here():  # programs it starts get SIGTERM
                    self._run_with_retries(handler, ctx)
            self._report(held, OutcomeKind.DONE)
        except handlers.JobAbandoned as why:
            self._report(held, OutcomeKind.RELEASE, f"consumer stopping: {why}")
        except handlers.LeaseLostDuringWork:  # CancelledDuringWork too: noted by the heartbeat
            held.note_lease_lost("during work")
        except handlers.PermanentError as error:
            self._report(held, OutcomeKind.FAILED, _describe(error), retryable=False)
        except Exception as error:
            logger.opt(exception=error).debug("handler {} raised", kind)
            self._report(held, OutcomeKind.FAILED, _describe(error))
        finally:
            metrics.child(metrics.PROCESSING_SECONDS, job.queue).observe(time.monotonic() - started)
            with self._lock:
                self._current = None
                reported = job.id in self._pending
            if not reported:  # no outcome to wait for: its files need no fsync from us
                self.sync.drop(job.id)
            metrics.BUSY.set(0)

    def _process_task(self, job: Job) -> None:
        """Run a task job through pqcore's runner and report what it says."""
        held = HeldJob(job)
        with self._lock:
            self._current = held
        metrics.BUSY.set(1)
        started = time.monotonic()
        try:
            with self.stop.signals_delivered_here():
                outcome = running.run(self.queue, job, lease_lost=held.lease_lost)
            if outcome.kind is running.RunKind.DONE:
                self._report(held, OutcomeKind.DONE, result=outcome.value)
            elif outcome.kind is running.RunKind.FAILED:
                error = outcome.error or "failed"
                self._report(held, OutcomeKind.FAILED, error, retryable=outcome.retryable)
            elif outcome.kind is running.RunKind.LOST:
                held.note_lease_lost(f"during task {outcome.task}")
            else:  # completed in the task's own transaction: nothing left to write
                with self._lock:
                    self._record(job, Outcome(job.id, held.token, OutcomeKind.DONE))
        finally:
            metrics.child(metrics.PROCESSING_SECONDS, job.queue).observe(time.monotonic() - started)
            with self._lock:
                self._current = None
            metrics.BUSY.set(0)

    def _report(
        self,
        held: HeldJob,
        kind: OutcomeKind,
        error: str | None = None,
        retryable: bool = True,
        result: Any = None,
    ) -> None:
        if held.lease_lost.is_set():
            if held.cancelled.is_set():
                # The handler ignored the cancel and finished anyway: fenced here.
                logger.bind(event="cancelled_outcome_dropped", job_id=held.job.id).warning(
                    "job={} returned {} after it was cancelled; the outcome is dropped",
                    held.job.id,
                    kind.value,
                )
            return  # given up on (grace over) or taken away: nothing more is written
        with self._lock:
            self._pending[held.job.id] = held
        if kind is OutcomeKind.DONE:
            self.worker.done(held.job, result=result)
        elif kind is OutcomeKind.FAILED:
            self.worker.fail(held.job, error or "failed", retryable=retryable)
        else:
            self.worker.release(held.job, error)

    def _run_with_retries(self, handler: handlers.Handler, ctx: handlers.HandlerContext) -> None:
        for retry in range(IMMEDIATE_RETRIES + 1):
            try:
                handler(ctx)
                return
            except Exception as error:
                if isinstance(error, OSError):
                    self._count_disk_error(error)
                if retry == IMMEDIATE_RETRIES or not handlers.is_transient(error):
                    raise
                pause = IMMEDIATE_BACKOFF_SECONDS * 2**retry * random.uniform(0.5, 1.0)
                metrics.IMMEDIATE_RETRIES.inc()
                logger.warning(
                    "transient error on job={} ({}); immediate retry {} of {} in {:.2f}s",
                    ctx.job.id,
                    _describe(error),
                    retry + 1,
                    IMMEDIATE_RETRIES,
                    pause,
                )
                ctx.work_seconds = 0.0  # the simulated work was done; only redo the effect
                ctx.sleep(pause)

    @staticmethod
    def _count_disk_error(error: OSError) -> None:
        if error.errno in JOB_FILE_STORAGE_ERRNOS:
            storage.count("job_file")  # the disk under the job files, not the job

    def _release(self, held: HeldJob, reason: str) -> None:
        try:
            self.queue.release(held.job.id, held.token, reason=reason)
            metrics.child(metrics.JOBS_RELEASED, held.job.queue).inc()
            logger.warning("released job={} back to pending: {}", held.job.id, reason)
        except LeaseLost:
            held.note_lease_lost("release rejected")
        except PQError as error:
            logger.error(
                "could not release job={} ({}); its lease expires in at most {}s",
                held.job.id,
                error,
                self.settings.lease_seconds,
            )

    # ------------------------------------------------------------ heartbeat thread

    def _heartbeat_loop(self) -> None:
        interval = self.settings.heartbeat_interval
        next_row_beat = 0.0
        while not self._finished.wait(TICK_SECONDS):
            with self._lock:
                held = self._current
            now = time.monotonic()
            if held and not held.lease_lost.is_set() and now - held.last_beat >= interval:
                self._beat_job(held)
            if now >= next_row_beat:
                next_row_beat = now + interval
                self._beat_row(held)
            if held and self.stop.requested and self.grace_left() <= 0:
                self._give_up(held)

    def _beat_job(self, held: HeldJob) -> None:
        try:
            self.queue.heartbeat(held.job.id, held.token, lease_seconds=self.settings.lease_seconds)
            held.last_beat = time.monotonic()
            metrics.LAST_HEARTBEAT.set_to_current_time()
            # The main loop is inside the handler: a job whose lease the database still
            # extends is alive however long it runs (see services/common/liveness.py).
            liveness.beat()
        except JobCancelled:
            self._note_cancelled(held, "heartbeat")
        except LeaseLost:
            held.note_lease_lost("heartbeat rejected")
        except PQError as error:
            logger.warning("heartbeat of job={} failed: {}", held.job.id, error)

    # ------------------------------------------------------------ an operator's cancel

    def _note_cancelled(self, held: HeldJob, where: str) -> None:
        """The job was cancelled while held: stop the handler (``cancelled`` first, so
        it raises ``CancelledDuringWork``), log who did it, count it once."""
        held.cancelled.set()
        held.lease_lost.set()
        with self._lock:
            if held.cancel_noted:
                return
            held.cancel_noted = True
        actor, reason = self._cancelled_by(held.job.id)
        metrics.child(metrics.JOBS_CANCELLED, held.job.queue).inc()
        logger.bind(
            event="job_cancelled", job_id=held.job.id, queue=held.job.queue, actor=actor
        ).warning(
            "job cancelled by operator job={} attempt={} actor={} reason={} (seen by {}):"
            " writing nothing more for it",
            held.job.id,
            held.job.attempts,
            actor,
            reason,
            where,
        )

    def _cancelled_by(self, job_id: int) -> tuple[str | None, str | None]:
        """(actor, reason) of the job's newest cancel in its history; Nones if unknown."""
        try:
            history = self.queue.history(job_id)
        except PQError as error:
            logger.debug("could not read the history of job={}: {}", job_id, error)
            return None, None
        for event in reversed(history):
            if event.action == Transition.CANCEL:
                return event.actor, event.detail
        return None, None

    def _was_cancelled(self, job_id: int) -> bool:
        try:
            return self.queue.get(job_id).status is JobState.CANCELLED
        except PQError:
            return False

    def _beat_row(self, held: HeldJob | None) -> None:
        try:
            known = self.queue.consumer_heartbeat(
                self.consumer_id,
                state=ConsumerState.BUSY if held else ConsumerState.IDLE,
                current_job_id=held.job.id if held else None,
                jobs_done=self.jobs_done,
                jobs_failed=self.jobs_failed,
            )
            if not known:  # purged after a long stall: register again
                self._register()
            if held is None:
                metrics.LAST_HEARTBEAT.set_to_current_time()
        except PQError as error:
            logger.warning("consumer heartbeat failed: {}", error)

    def _give_up(self, held: HeldJob) -> None:
        """The grace period is over and the handler did not stop: release and exit now."""
        logger.warning(
            "grace period of {}s over with job={} still running; releasing it and exiting",
            self.settings.grace_seconds,
            held.job.id,
        )
        held.lease_lost.set()  # a cooperative handler stops before writing anything more
        self._release(held, "consumer stopping: grace period over")
        self._close_worker()  # earlier outcomes, and jobs claimed but never started
        self._deregister()
        logger.complete()
        os._exit(0)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
