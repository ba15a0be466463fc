"""The storage seam: the one interface every backend implements (the design's
``PersistentQInterface``).

Semantics every backend must keep, checked by ``tests/conformance``:

* At-least-once delivery with leases. ``claim`` moves pending jobs to processing
  atomically, gives each a fresh random lease token and an expiry, and counts the
  attempt. Two claimers never get the same job.
* Fencing. ``heartbeat``, ``complete``, ``fail`` and ``release`` must present the
  token; once the lease was taken away (rescued, marked by an operator, re-claimed)
  they raise ``LeaseLost`` and change nothing, so a zombie cannot finish a job twice.
* Every transition is a single statement guarded by the expected current state and
  appends its ``job_events`` row in the same transaction.
* Validation happens before anything is written: bad input raises
  ``InvalidArgument`` and changes nothing.

Times are UNIX epoch seconds from the queue's ``clock`` (tests inject a fake one).
"""

from __future__ import annotations

import abc
import getpass
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from pqcore.config import QueueSettings
from pqcore.exceptions import InvalidArgument, PayloadTooLarge
from pqcore.models import (
    Consumer,
    EnqueueRequest,
    Job,
    JobEvent,
    JobFilter,
    Outcome,
    Page,
    SettleResult,
    Stats,
    ThroughputBucket,
)
from pqcore.states import JobState, Transition

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_DEDUPE_KEY = 1024
MAX_ERROR_TEXT = 8 * 1024
MAX_PRIORITY = 1_000_000
MAX_BATCH = 10_000

# Operator actions by name, as the CLI and consoles offer them.
OPERATOR_ACTIONS = {
    "resubmit": Transition.RESUBMIT,
    "retry": Transition.RESUBMIT,
    "cancel": Transition.CANCEL,
    "mark_done": Transition.MARK_DONE,
    "mark_failed": Transition.MARK_FAILED,
}


def default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "operator"


class PersistentQInterface(abc.ABC):
    """A persistent job queue. Backends implement the abstract methods below."""

    backend: str
    settings: QueueSettings
    clock: Callable[[], float]

    def __init__(self, settings: QueueSettings, clock: Callable[[], float] | None = None) -> None:
        self.settings = settings
        self.clock = clock or time.time

    # ---------------------------------------------------------------- producers

    def enqueue(
        self,
        data: str,
        *,
        queue: str = "default",
        priority: int = 0,
        delay: float = 0.0,
        run_at: float | None = None,
        dedupe_key: str | None = None,
        max_attempts: int | None = None,
        actor: str = "producer",
    ) -> Job:
        """Add one job; with a ``dedupe_key`` that an active job holds, return that job."""
        request = EnqueueRequest(data, queue, priority, delay, run_at, dedupe_key, max_attempts)
        return self.enqueue_many([request], actor=actor)[0]

    @abc.abstractmethod
    def enqueue_many(
        self, items: Iterable[str | EnqueueRequest], *, actor: str = "producer"
    ) -> list[Job]:
        """Add jobs in one transaction: all of them or none. Returns them in order."""

    # ---------------------------------------------------------------- consumers

    def claim(
        self,
        consumer_id: str,
        *,
        limit: int = 1,
        queues: Sequence[str] | None = None,
        lease_seconds: float | None = None,
    ) -> list[Job]:
        """Claim up to ``limit`` runnable jobs (highest priority, then oldest first).

        ``queues=None`` claims from every queue.
        """
        return self.settle_and_claim(
            [], consumer_id, limit=limit, queues=queues, lease_seconds=lease_seconds
        ).claimed

    @abc.abstractmethod
    def settle_and_claim(
        self,
        outcomes: Sequence[Outcome],
        consumer_id: str,
        *,
        limit: int = 1,
        queues: Sequence[str] | None = None,
        lease_seconds: float | None = None,
    ) -> SettleResult:
        """Report outcomes of held jobs and claim the next ones in one transaction.

        An outcome whose lease is no longer held is not applied; its job id is
        listed in ``lost`` (the others still apply).
        """

    @abc.abstractmethod
    def heartbeat(
        self, job_id: int, lease_token: str, *, lease_seconds: float | None = None
    ) -> float:
        """Extend the lease; returns the new expiry. Raises ``LeaseLost``."""

    def complete(self, job_id: int, lease_token: str) -> Job:
        """processing -> done. Raises ``LeaseLost`` if the caller no longer holds the job."""
        return self._settle_one(Outcome(job_id, lease_token, "done"))

    def fail(self, job_id: int, lease_token: str, error: str, *, retryable: bool = True) -> Job:
        """processing -> failed (retry after backoff) or permanently_failed (dead letter)
        when not retryable or out of attempts. Raises ``LeaseLost``."""
        return self._settle_one(Outcome(job_id, lease_token, "failed", error, retryable))

    def release(self, job_id: int, lease_token: str, *, reason: str | None = None) -> Job:
        """processing -> pending at once, giving the attempt back (e.g. on SIGTERM)."""
        return self._settle_one(Outcome(job_id, lease_token, "release", reason))

    @abc.abstractmethod
    def _settle_one(self, outcome: Outcome) -> Job:
        """Apply one outcome; raise ``LeaseLost``/``JobNotFound`` instead of listing it lost."""

    @abc.abstractmethod
    def wait_for_jobs(self, timeout: float, queues: Sequence[str] | None = None) -> bool:
        """Block up to ``timeout`` seconds until a job may be claimable; True if one is."""

    # ---------------------------------------------------------------- reading

    @abc.abstractmethod
    def get(self, job_id: int) -> Job:
        """The job, or ``JobNotFound``."""

    @abc.abstractmethod
    def history(self, job_id: int) -> list[JobEvent]:
        """Every transition of the job, oldest first. ``JobNotFound`` if it never existed."""

    @abc.abstractmethod
    def stats(self, queue: str | None = None) -> Stats:
        """Counts per status (every state present), oldest runnable pending age, stalled count."""

    @abc.abstractmethod
    def list_jobs(
        self,
        flt: JobFilter | None = None,
        *,
        limit: int = 50,
        before_id: int | None = None,
        oldest_first: bool = False,
        after_id: int | None = None,
    ) -> Page:
        """Jobs matching the filter, newest first; keyset pagination via ``before_id``.

        ``oldest_first=True`` lists in ascending id order instead; its cursor is passed
        back as ``after_id``. Never an OFFSET: every page costs the same at any depth.
        """

    @abc.abstractmethod
    def count_jobs(self, flt: JobFilter | None = None) -> int:
        """How many jobs match the filter."""

    # ---------------------------------------------------------------- console charts
    # Each is bounded (an index range or the newest ``sample`` rows), so it costs the
    # same at a million jobs as at a thousand. The SQL is per backend (``_select``);
    # what the rows mean is the same everywhere, so it is written once, here.

    @abc.abstractmethod
    def _select(self, query: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Rows of the backend's named read query ``query``; each row supports
        ``row["column"]``."""

    def queue_names(self) -> list[str]:
        """Names of the queues that hold jobs, sorted."""
        return [row["queue"] for row in self._select("queue_names")]

    def stalled_jobs(self, *, limit: int = 50) -> list[Job]:
        """Processing jobs whose lease has expired (not yet rescued), longest expired first."""
        params = {"now": self.clock(), "limit": self._check_limit(limit, 1000)}
        return [Job.from_row(row) for row in self._select("expired_leases", params)]

    def throughput(self, since: float, *, bucket_seconds: int = 60) -> list[ThroughputBucket]:
        """Transitions per time bucket from the history, from ``since`` on, oldest first.

        Buckets start at multiples of ``bucket_seconds``; empty buckets are left out.
        """
        since = _finite(since, "since")
        if isinstance(bucket_seconds, bool) or not isinstance(bucket_seconds, int):
            raise InvalidArgument("bucket_seconds must be an integer")
        if not 1 <= bucket_seconds <= 86_400:
            raise InvalidArgument("bucket_seconds must be from 1 to 86400")
        rows = self._select("throughput", {"since": since, "bucket": bucket_seconds})
        return [
            ThroughputBucket(
                float(r["start"]), int(r["enqueued"]), int(r["completed"]), int(r["failed"])
            )
            for r in rows
        ]

    def failure_reasons(self, *, limit: int = 10, sample: int = 10_000) -> list[tuple[str, int]]:
        """The most frequent errors (their first 160 characters) among the newest ``sample``
        failed jobs and the newest ``sample`` dead-lettered jobs, most frequent first."""
        params = {"limit": self._check_limit(limit, 1000), "sample": _check_sample(sample)}
        return [(r["reason"], int(r["n"])) for r in self._select("failure_reasons", params)]

    def attempts_histogram(self, *, sample: int = 10_000) -> dict[int, int]:
        """attempts -> how many of the newest ``sample`` jobs tried at least once made that
        many attempts (the current attempt count: a resubmit starts it again)."""
        rows = self._select("attempts_histogram", {"sample": _check_sample(sample)})
        return {int(r["attempts"]): int(r["n"]) for r in rows}

    def processing_seconds(self, *, sample: int = 10_000) -> list[float]:
        """Seconds from the last start to the finish of the newest ``sample`` done jobs
        (those a consumer started), newest first."""
        rows = self._select("processing_seconds", {"sample": _check_sample(sample)})
        return [float(r["seconds"]) for r in rows]

    @abc.abstractmethod
    def dedupe_keys_known(self, keys: Sequence[str]) -> set[str]:
        """The subset of ``keys`` carried by some job in *any* state (finished ones too).

        The producer's reconciliation uses it: enqueue's dedupe only covers active jobs.
        May scan the jobs table; meant for a start-up check, not a hot path."""

    @abc.abstractmethod
    def last_event_id(self) -> int:
        """The id of the newest history row (0 if none): a cursor for ``events_after``."""

    @abc.abstractmethod
    def events_after(
        self, after_id: int, *, to_status: JobState | None = None, limit: int = 1000
    ) -> list[JobEvent]:
        """History rows with an id above ``after_id`` (optionally only those entering
        ``to_status``), oldest first: lets the manager notice every dead-lettered job."""

    # ---------------------------------------------------------------- operators

    def resubmit(self, job_id: int, *, actor: str, reason: str | None = None) -> Job:
        """failed | permanently_failed | cancelled -> pending, with a fresh attempt budget."""
        return self.operator_action(Transition.RESUBMIT, job_id, actor=actor, reason=reason)

    def cancel(self, job_id: int, *, actor: str, reason: str | None = None) -> Job:
        """pending | failed -> cancelled."""
        return self.operator_action(Transition.CANCEL, job_id, actor=actor, reason=reason)

    def mark_done(self, job_id: int, *, actor: str, reason: str | None = None) -> Job:
        """Any unfinished job, or a dead-lettered one -> done. A holder's lease is revoked."""
        return self.operator_action(Transition.MARK_DONE, job_id, actor=actor, reason=reason)

    def mark_failed(self, job_id: int, *, actor: str, reason: str | None = None) -> Job:
        """pending | processing | failed -> permanently_failed (the dead-letter queue)."""
        return self.operator_action(Transition.MARK_FAILED, job_id, actor=actor, reason=reason)

    @abc.abstractmethod
    def operator_action(
        self, transition: Transition, job_id: int, *, actor: str, reason: str | None = None
    ) -> Job:
        """Apply an operator's transition to one job, recorded under ``actor``."""

    @abc.abstractmethod
    def bulk_action(
        self,
        transition: Transition,
        flt: JobFilter,
        *,
        actor: str,
        reason: str | None = None,
        limit: int | None = None,
    ) -> tuple[int, int]:
        """Apply an operator's transition to every job matching the filter that may take it,
        in chunks of short transactions. Returns (applied, skipped because they changed)."""

    # ---------------------------------------------------------------- manager

    @abc.abstractmethod
    def rescue_expired(self, *, limit: int = 1000) -> list[Job]:
        """Processing jobs whose lease expired -> pending (or dead letter when out of attempts)."""

    @abc.abstractmethod
    def rescue_stalled(self, stall_timeout: float, *, limit: int = 1000) -> list[Job]:
        """Processing jobs started longer than ``stall_timeout`` ago, even if heartbeating."""

    @abc.abstractmethod
    def schedule_retries(self, *, limit: int = 1000) -> list[Job]:
        """failed jobs whose backoff is over -> pending; out of attempts -> dead letter."""

    @abc.abstractmethod
    def purge_done(self, older_than: float, *, limit: int = 10_000) -> int:
        """Delete done jobs (and their history) finished more than ``older_than`` seconds ago."""

    # ---------------------------------------------------------------- consumer registry
    # One statement each, the same on every backend: written once over ``_change``.

    @abc.abstractmethod
    def _change(self, query: str, params: dict[str, Any]) -> tuple[list[Any], int]:
        """Run the backend's named write query ``query`` as a transaction of its own;
        returns the rows it returned (``RETURNING``) and how many rows it changed."""

    def consumer_register(self, consumer_id: str, *, host: str, pid: int, queues: str) -> None:
        check_consumer_id(consumer_id)
        params = {"id": consumer_id, "host": host, "pid": pid, "queues": queues}
        self._change("consumer_register", {**params, "now": self.clock()})

    def consumer_heartbeat(
        self,
        consumer_id: str,
        *,
        state: str,
        current_job_id: int | None,
        jobs_done: int,
        jobs_failed: int,
    ) -> bool:
        """Refresh the consumer's row; False if it is unknown (then register again)."""
        if state not in ("idle", "busy"):
            raise InvalidArgument("a live consumer is idle or busy")
        params = {
            "id": consumer_id,
            "now": self.clock(),
            "state": state,
            "current_job_id": current_job_id,
            "jobs_done": jobs_done,
            "jobs_failed": jobs_failed,
        }
        rows, _ = self._change("consumer_heartbeat", params)
        return bool(rows)

    def consumer_deregister(self, consumer_id: str) -> None:
        self._change("consumer_deregister", {"id": consumer_id, "now": self.clock()})

    def consumers_mark_dead(self, heartbeat_timeout: float) -> list[str]:
        """Consumers silent for longer than ``heartbeat_timeout`` -> dead. Returns their ids."""
        params = {"heartbeat_before": self.clock() - heartbeat_timeout}
        rows, _ = self._change("consumers_mark_dead", params)
        return [row["id"] for row in rows]

    def consumers_purge(self, older_than: float) -> int:
        """Forget stopped or dead consumers silent for longer than ``older_than`` seconds."""
        _, changed = self._change(
            "consumers_purge", {"heartbeat_before": self.clock() - older_than}
        )
        return changed

    def consumers(self) -> list[Consumer]:
        return [Consumer.from_row(row) for row in self._select("consumers_all")]

    # ---------------------------------------------------------------- leadership

    def leader_attempt_elect(self, name: str, holder: str, ttl: float) -> bool:
        """Become or stay the leader ``name`` for ``ttl`` seconds; False if another holds it."""
        now = self.clock()
        params = {"name": name, "holder": holder, "now": now, "expires_at": now + ttl}
        rows, _ = self._change("leader_attempt_elect", params)
        return bool(rows)

    def leader_resign(self, name: str, holder: str) -> None:
        self._change("leader_resign", {"name": name, "holder": holder})

    def leader(self, name: str) -> tuple[str, float] | None:
        """(holder, expires_at) of an unexpired leadership, else None."""
        rows = self._select("leader_get", {"name": name})
        if not rows or rows[0]["expires_at"] < self.clock():
            return None
        return rows[0]["holder"], float(rows[0]["expires_at"])

    # ---------------------------------------------------------------- audit

    @abc.abstractmethod
    def doctor(self) -> list[str]:
        """Check storage integrity and the queue's invariants; returns the problems found."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> PersistentQInterface:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- shared validation

    def _validated(self, item: str | EnqueueRequest, now: float) -> dict[str, Any]:
        """Check one enqueue request; returns the row values. Raises before any write."""
        request = item if isinstance(item, EnqueueRequest) else EnqueueRequest(item)
        data = request.data
        if not isinstance(data, str):
            raise InvalidArgument(f"payload must be text, not {type(data).__name__}")
        if not data.strip():
            raise InvalidArgument("payload is empty")
        if "\x00" in data:
            raise InvalidArgument("payload contains a NUL character")
        try:
            size = len(data.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidArgument("payload is not valid UTF-8 text") from None
        if size > self.settings.max_payload_bytes:
            raise PayloadTooLarge(
                f"payload is {size} bytes; the limit is {self.settings.max_payload_bytes}"
                " (PQ_MAX_PAYLOAD_BYTES)"
            )
        if not isinstance(request.queue, str) or not QUEUE_NAME.match(request.queue):
            raise InvalidArgument(
                f"invalid queue name {request.queue!r}: 1-64 letters, digits or _.:-"
            )
        if isinstance(request.priority, bool) or not isinstance(request.priority, int):
            raise InvalidArgument("priority must be an integer")
        if abs(request.priority) > MAX_PRIORITY:
            raise InvalidArgument(f"priority must be between -{MAX_PRIORITY} and {MAX_PRIORITY}")
        if request.run_at is not None:
            run_at = _finite(request.run_at, "run_at")
        else:
            delay = _finite(request.delay, "delay")
            if delay < 0:
                raise InvalidArgument("delay must not be negative")
            run_at = now + delay
        if request.dedupe_key is not None:
            if not isinstance(request.dedupe_key, str) or not request.dedupe_key:
                raise InvalidArgument("dedupe key must be non-empty text")
            if len(request.dedupe_key) > MAX_DEDUPE_KEY:
                raise InvalidArgument(f"dedupe key is longer than {MAX_DEDUPE_KEY} characters")
        max_attempts = request.max_attempts
        if max_attempts is None:  # not `or`: an explicit 0 is an error, not the default
            max_attempts = self.settings.max_attempts
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
            raise InvalidArgument("max_attempts must be an integer")
        if not 1 <= max_attempts <= 1000:
            raise InvalidArgument("max_attempts must be between 1 and 1000")
        return {
            "queue": request.queue,
            "data": data,
            "priority": request.priority,
            "run_at": run_at,
            "dedupe_key": request.dedupe_key,
            "max_attempts": max_attempts,
            "now": now,
        }

    def _lease_seconds(self, lease_seconds: float | None) -> float:
        value = self.settings.lease_seconds if lease_seconds is None else lease_seconds
        if not (math.isfinite(value) and value > 0):
            raise InvalidArgument("lease_seconds must be a positive number")
        return value

    @staticmethod
    def _check_limit(limit: int, maximum: int = MAX_BATCH, minimum: int = 0) -> int:
        if isinstance(limit, bool) or not isinstance(limit, int) or not minimum <= limit <= maximum:
            raise InvalidArgument(f"limit must be an integer from {minimum} to {maximum}")
        return limit

    @staticmethod
    def _check_queues(queues: Sequence[str] | None) -> list[str] | None:
        if queues is None:
            return None
        if isinstance(queues, str):
            queues = [queues]
        names = list(dict.fromkeys(queues))
        for name in names:
            if not isinstance(name, str) or not QUEUE_NAME.match(name):
                raise InvalidArgument(f"invalid queue name {name!r}")
        if not names:
            raise InvalidArgument("queues must name at least one queue")
        return names


def clip_error(text: str | None) -> str | None:
    """Error texts are stored whole up to a limit; a traceback can be long."""
    if text is None:
        return None
    text = str(text)
    if len(text) > MAX_ERROR_TEXT:
        return text[: MAX_ERROR_TEXT - 20] + "... [truncated]"
    return text


def check_consumer_id(consumer_id: object) -> None:
    if not isinstance(consumer_id, str) or not 0 < len(consumer_id) <= 200:
        raise InvalidArgument("consumer id must be 1-200 characters of text")


def _check_sample(sample: object) -> int:
    if isinstance(sample, bool) or not isinstance(sample, int) or not 1 <= sample <= 1_000_000:
        raise InvalidArgument("sample must be an integer from 1 to 1000000")
    return sample


def _finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{name} must be a number")
    if not math.isfinite(value):
        raise InvalidArgument(f"{name} must be finite")
    return float(value)
