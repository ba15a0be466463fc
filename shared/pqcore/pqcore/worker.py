"""A consumer-side loop helper: claim jobs in batches, hand them out one at a time, and
report finished ones together with the next claim, so a busy consumer makes one commit
per batch instead of two per job.

    with Worker(queue, consumer_id, batch=32) as worker:
        while (job := worker.next(timeout=5.0)) is not None:
            handle(job)
            worker.done(job)          # or worker.fail(job, error) / worker.release(job)

Guarantees (the queue's at-least-once and fencing rules are unchanged; the helper only
groups calls):

* Every outcome is written within ``max_ack_delay`` seconds: waiting outcomes ride with
  the next claim (one commit for both: a claim is as durable as an outcome, so it costs
  no extra fsync), and a flusher thread writes them while the caller is busy with a long
  job, so a finished job is never left to expire its lease and run again. The flusher
  starts early by about twice what its recent writes took, so the commit ends, not
  starts, by the deadline.
* Claimed jobs that were never handed out are released (attempt given back) by
  ``close()``; jobs handed out and not reported stay held until their lease expires,
  exactly as with ``claim``.
* A buffered job is only handed out while at least half of its lease is left; older
  ones are released with the next settlement and fresh ones claimed.
* Outcomes whose lease was lost (rescued, operator action) are not applied; their ids
  collect in ``lost``, and ``on_settled(outcome, job_or_None)`` hears of every outcome
  once it was written (None: refused, the lease was lost).
* ``before_write(outcomes)`` runs just before outcomes are written and returns the ones
  to write: a consumer makes its jobs' effects durable there, a batch at a time, and
  turns a done whose effect could not be made durable into a failure.
* ``claim_cooldown``: after a claim that found some jobs but fewer than it asked for,
  the next claim waits until this long after it (after a full claim, or one that found
  nothing, the next runs at once), so a consumer keeping up with its producers claims
  the jobs of a few milliseconds together instead of one write transaction a job.
* ``prefetch_seconds`` (default 1 s) keeps long jobs from being hoarded: the worker
  claims only as many jobs as it expects to hand out within that time (from the pace
  it has been handing them out at), at least one and at most ``batch``. With None
  every claim asks for ``batch``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from pqcore.exceptions import InvalidArgument
from pqcore.models import Job, Outcome, SettleResult
from pqcore.queue import Queue
from pqcore.states import OutcomeKind
from pqcore.validation import encode_json
from pqcore.validation import lease_seconds as check_lease

# A claim is one commit, and so is a batch of outcomes: the batch sets how many commits
# (and fsyncs, at FULL) a job costs. 128 against 32, 4 processes draining (2 cores):
# SQLite FULL 18,185 -> 26,392 jobs/s, NORMAL 21,229 -> 28,348, PostgreSQL 12,993 ->
# 17,674. A big batch would hoard long jobs; DEFAULT_PREFETCH_SECONDS keeps a claim to
# what the worker expects to start within a second.
DEFAULT_BATCH = 128
DEFAULT_PREFETCH_SECONDS = 1.0
DEFAULT_MAX_ACK_DELAY = 0.05
DEFAULT_CLAIM_COOLDOWN = 0.005


class Worker:
    def __init__(
        self,
        queue: Queue,
        consumer_id: str,
        *,
        batch: int = DEFAULT_BATCH,
        queues: Sequence[str] | None = None,
        lease_seconds: float | None = None,
        max_ack_delay: float = DEFAULT_MAX_ACK_DELAY,
        claim_cooldown: float = DEFAULT_CLAIM_COOLDOWN,
        prefetch_seconds: float | None = DEFAULT_PREFETCH_SECONDS,
        on_settled: Callable[[Outcome, Job | None], None] | None = None,
        before_write: Callable[[list[Outcome]], list[Outcome]] | None = None,
    ) -> None:
        if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 10_000:
            raise InvalidArgument("batch must be an integer from 1 to 10000")
        if not max_ack_delay >= 0:
            raise InvalidArgument("max_ack_delay must not be negative")
        if not 0 <= claim_cooldown <= max_ack_delay:
            raise InvalidArgument("claim_cooldown must be from 0 to max_ack_delay")
        if prefetch_seconds is not None and not prefetch_seconds > 0:
            raise InvalidArgument("prefetch_seconds must be positive")
        self.queue = queue
        self.consumer_id = consumer_id
        self.batch = batch
        self.queues = list(queues) if queues is not None else None
        self.lease_seconds = check_lease(queue.settings, lease_seconds)
        self.max_ack_delay = max_ack_delay
        self.claim_cooldown = claim_cooldown
        # Whether the last claim found jobs, but fewer than it asked for, and when it
        # ran: see _cool_down.
        self._claimed_short = False
        self._claimed_at = 0.0
        self.prefetch_seconds = prefetch_seconds
        self.on_settled = on_settled
        self.before_write = before_write
        self._pace: float | None = None  # seconds between handouts, smoothed
        self._handed_at: float | None = None
        self.lost: list[int] = []  # job ids whose outcome was refused: lease no longer held
        self.settled = 0
        # (job, when it was claimed): a lease's age is measured on this host's monotonic
        # clock (or the one a test injects), never by comparing this host's clock with
        # the expiry the database's clock wrote.
        self._clock = queue.clock or time.monotonic
        self._ready: deque[tuple[Job, float]] = deque()
        self._outcomes: list[Outcome] = []
        self._oldest_outcome_at = 0.0
        self._write_seconds = 0.0  # how long writing outcomes has taken lately, smoothed
        self._lock = threading.Condition()
        self._flusher: threading.Thread | None = None
        self._flusher_error: BaseException | None = None
        self._closed = False

    # ------------------------------------------------------------ the loop

    def next(self, timeout: float = 0.0) -> Job | None:
        """The next job to work on, waiting up to ``timeout`` seconds for one."""
        self._check_open()
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if self._ready:
                job, claimed_at = self._ready.popleft()
                if self._clock() - claimed_at < self.lease_seconds / 2:
                    self._note_handout()
                    return job
                # It waited in the buffer too long, and the rest waited longer: give
                # them all back and claim fresh leases.
                stale = [job, *(j for j, _ in self._ready)]
                self._ready.clear()
                self._record(
                    *(Outcome(j.id, _token(j), OutcomeKind.RELEASE, "lease aged") for j in stale)
                )
            self._cool_down(deadline)
            if self._settle(self._claim_size()):
                continue
            self._handed_at = None  # idle: the time until the next job is no job's pace
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.queue.wait_for_jobs(remaining, self.queues):
                return None

    def done(self, job: Job, *, result: Any = None) -> None:
        """``result``: a JSON value stored with the job (checked here: a bad one raises)."""
        text = None
        if result is not None:
            limit = self.queue.settings.max_payload_bytes
            text = encode_json(result, f"the result of job {job.id}", limit)
        self._record(Outcome(job.id, _token(job), OutcomeKind.DONE, result=text))

    def fail(self, job: Job, error: str, *, retryable: bool = True) -> None:
        self._record(Outcome(job.id, _token(job), OutcomeKind.FAILED, error, retryable))

    def release(self, job: Job, reason: str | None = None) -> None:
        self._record(Outcome(job.id, _token(job), OutcomeKind.RELEASE, reason))

    def flush(self) -> None:
        """Write every recorded outcome now."""
        self._settle(0)

    def close(self) -> None:
        """Give back claimed jobs never handed out and write every outcome."""
        if self._closed:
            return
        unstarted = [job for job, _ in self._ready]
        self._ready.clear()
        stopped = (
            Outcome(j.id, _token(j), OutcomeKind.RELEASE, "worker stopped") for j in unstarted
        )
        self._record(*stopped)
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        flusher = self._flusher
        if flusher is not None:
            flusher.join()
        # A failed background write put its outcomes back: the final write retries them.
        self._flusher_error = None
        self._settle(0)

    def __enter__(self) -> Worker:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def buffered(self) -> int:
        """Jobs claimed and not yet handed out."""
        return len(self._ready)

    # ------------------------------------------------------------ internals

    def _note_handout(self) -> None:
        now = time.monotonic()
        if self._handed_at is not None:
            gap = now - self._handed_at
            self._pace = gap if self._pace is None else 0.7 * self._pace + 0.3 * gap
        self._handed_at = now

    def _cool_down(self, deadline: float) -> None:
        """Space claims that keep finding fewer jobs than asked by ``claim_cooldown``.

        A consumer keeping up with its producers claims the moment a job arrives: one
        job, one write transaction and its fsync, each holding the database's single
        write lock while the producers wait for it. A short pause after a claim that
        came back short lets the jobs enqueued meanwhile come in one claim (the
        ``dispatch_cooldown`` of Oban, River's ``FetchCooldown``). A backlog is never
        slowed: a full claim is followed by the next at once. Nor is a worker woken from
        idle (its last claim found nothing): the first job after a lull is claimed when
        it arrives. Nor is a caller that gave no time to wait.
        """
        if not self._claimed_short:
            return
        pause = min(self._claimed_at + self.claim_cooldown, deadline) - time.monotonic()
        if pause > 0:
            time.sleep(pause)

    def _claim_size(self) -> int:
        if self.prefetch_seconds is None:
            return self.batch
        if self._pace is None:
            return 1  # nothing known yet of how long a job takes here
        wanted = int(self.prefetch_seconds / max(self._pace, 1e-6))
        return max(1, min(self.batch, wanted))

    def _report(self, outcomes: list[Outcome], result: SettleResult) -> None:
        with self._lock:
            self.settled += len(result.settled)
            self.lost.extend(result.lost)
        if self.on_settled is None:
            return
        settled = iter(result.settled)
        lost = set(result.lost)
        for outcome in outcomes:  # settled come back in the order the outcomes went in
            self.on_settled(outcome, None if outcome.job_id in lost else next(settled, None))

    def _record(self, *outcomes: Outcome) -> None:
        if not outcomes:
            return
        with self._lock:
            first = not self._outcomes
            if first:
                self._oldest_outcome_at = time.monotonic()
            self._outcomes.extend(outcomes)
            self._start_flusher()
            if first:
                # The flusher's deadline is the oldest outcome's: later ones leave it
                # where it is, and waking the flusher for each (a futex wake and a GIL
                # hand-off a job) cost a busy consumer more than the job's own write.
                self._lock.notify_all()

    def _flush_lead(self) -> float:
        """How long before an outcome's deadline the flusher starts writing it."""
        return min(self.max_ack_delay / 2, 2 * self._write_seconds)

    def _timed_write(
        self, outcomes: list[Outcome], limit: int
    ) -> tuple[list[Outcome], SettleResult]:
        """(the outcomes written, which ``before_write`` may have changed; the result)."""
        started = time.monotonic()
        try:
            if outcomes and self.before_write is not None:
                outcomes = self.before_write(outcomes)
            result = self.queue.settle_and_claim(
                outcomes,
                self.consumer_id,
                limit=limit,
                queues=self.queues,
                lease_seconds=self.lease_seconds,
            )
        except BaseException:
            with self._lock:  # nothing was written: keep them for the next attempt
                self._outcomes[:0] = outcomes
            raise
        if outcomes:
            took = time.monotonic() - started
            with self._lock:
                self._write_seconds = 0.8 * self._write_seconds + 0.2 * took
        return outcomes, result

    def _settle(self, limit: int) -> int:
        """Write waiting outcomes and claim up to ``limit`` more, in one transaction."""
        self._raise_flusher_error()
        with self._lock:
            outcomes, self._outcomes = self._outcomes, []
        if not outcomes and not limit:
            return 0
        claimed_at = self._clock()  # before the call: the lease started no later
        outcomes, result = self._timed_write(outcomes, limit)
        if limit:
            self._claimed_short = 0 < len(result.claimed) < limit
            self._claimed_at = time.monotonic()
        self._report(outcomes, result)
        self._ready.extend((job, claimed_at) for job in result.claimed)
        return len(result.claimed)

    def _start_flusher(self) -> None:
        if self._flusher is None and not self._closed:
            self._flusher = threading.Thread(
                target=self._flush_when_due, name=f"pq-ack-{self.consumer_id}", daemon=True
            )
            self._flusher.start()

    def _flush_when_due(self) -> None:
        # Sleeps on the condition while nothing waits (no CPU when idle); writes the
        # outcomes in time for the oldest to be committed within max_ack_delay.
        try:
            while True:
                with self._lock:
                    while not self._closed:
                        if self._outcomes:
                            deadline = self._oldest_outcome_at + self.max_ack_delay
                            due = deadline - self._flush_lead() - time.monotonic()
                            if due <= 0:
                                break
                            self._lock.wait(due)
                        else:
                            self._lock.wait()
                    if self._closed:
                        return
                    outcomes, self._outcomes = self._outcomes, []
                self._report(*self._timed_write(outcomes, 0))
        except BaseException as error:  # surfaced to the caller on its next call
            with self._lock:
                self._flusher_error = error
                self._flusher = None

    def _raise_flusher_error(self) -> None:
        error, self._flusher_error = self._flusher_error, None
        if error is not None:
            raise error

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidArgument("this worker is closed")


def _token(job: Job) -> str:
    if job.lease_token is None:
        raise InvalidArgument(f"job {job.id} is not held (no lease token)")
    return job.lease_token
