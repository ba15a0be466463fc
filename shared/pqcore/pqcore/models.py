"""Plain records that cross the pqcore boundary: jobs, history events, stats, consumers."""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any

from pqcore.states import ConsumerState, DependencyFailure, JobState, OutcomeKind


@dataclasses.dataclass(frozen=True)
class Job:
    id: int
    queue: str
    data: str
    status: JobState
    priority: int
    run_at: float
    attempts: int
    max_attempts: int
    error: str | None
    consumer_id: str | None
    lease_token: str | None
    lease_expires_at: float | None
    dedupe_key: str | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    concurrency_key: str | None = None  # the partition per-key limits count (controls)
    result: str | None = None  # what the job's task returned, as JSON text (tasks)
    progress: float | None = None  # 0..1, as the running attempt last reported it
    progress_message: str | None = None
    progress_at: float | None = None
    waiting_for: int = 0  # jobs it depends on that have not finished yet (0: claimable)
    has_dependents: bool = False  # some job waits for this one

    @property
    def waiting(self) -> bool:
        """Pending, but not claimable until the jobs it depends on have finished."""
        return self.status is JobState.PENDING and self.waiting_for > 0

    def result_value(self) -> Any:
        """The result decoded from JSON (None when there is none)."""
        return None if self.result is None else json.loads(self.result)

    @classmethod
    def from_row(cls, row: Any) -> Job:
        values = {f.name: row[f.name] for f in dataclasses.fields(cls)}
        values["status"] = JobState(values["status"])
        values["has_dependents"] = bool(values["has_dependents"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["status"] = self.status.value
        return out


@dataclasses.dataclass(frozen=True)
class Dependency:
    """One job waiting for another: ``job_id`` waits for ``depends_on``. ``resolution`` is
    the final state ``depends_on`` reached (None: not yet); ``status`` is the state the
    other side is in now (None: purged)."""

    job_id: int
    depends_on: int
    on_failure: DependencyFailure
    created_at: float
    resolved_at: float | None
    resolution: JobState | None
    status: JobState | None

    @classmethod
    def from_row(cls, row: Any) -> Dependency:
        values = {f.name: row[f.name] for f in dataclasses.fields(cls)}
        values["on_failure"] = DependencyFailure(values["on_failure"])
        for name in ("resolution", "status"):
            values[name] = JobState(values[name]) if values[name] is not None else None
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for name in ("on_failure", "resolution", "status"):
            out[name] = out[name].value if out[name] is not None else None
        return out


@dataclasses.dataclass(frozen=True)
class JobEvent:
    """One row of a job's history: a transition, who made it and why."""

    id: int
    job_id: int
    at: float
    from_status: JobState | None
    to_status: JobState
    action: str
    actor: str
    attempt: int
    detail: str | None

    @classmethod
    def from_row(cls, row: Any) -> JobEvent:
        values = {f.name: row[f.name] for f in dataclasses.fields(cls)}
        values["from_status"] = JobState(values["from_status"]) if values["from_status"] else None
        values["to_status"] = JobState(values["to_status"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["from_status"] = self.from_status.value if self.from_status else None
        out["to_status"] = self.to_status.value
        return out


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    """An operator's change outside a job's own history: a pause, a limit, a setting, a
    schedule. Values are JSON text (None where there was none)."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    old_value: str | None
    new_value: str | None
    detail: str | None

    @classmethod
    def from_row(cls, row: Any) -> AuditEntry:
        return cls(**{f.name: row[f.name] for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class EnqueueRequest:
    """One job to enqueue; ``enqueue_many`` takes these (or plain payload strings)."""

    data: str
    queue: str = "default"
    priority: int = 0
    delay: float = 0.0
    run_at: float | None = None
    dedupe_key: str | None = None
    max_attempts: int | None = None
    concurrency_key: str | None = None  # the partition per-key limits count
    # Jobs (ids, or anything with an ``id``) this one waits for: it is claimable only once
    # every one of them is done. If one ends permanently_failed or cancelled instead, this
    # job is cancelled (``DependencyFailure.CANCEL``) or runs anyway (``RUN``).
    after: tuple[Any, ...] = ()
    on_dependency_failure: str = DependencyFailure.CANCEL


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a consumer reports for a job it holds, for ``settle_and_claim``.

    ``kind`` is an ``OutcomeKind`` (its value is accepted too).
    """

    job_id: int
    lease_token: str
    kind: str = OutcomeKind.DONE
    error: str | None = None
    retryable: bool = True
    result: str | None = None  # DONE: the job's result as JSON text (validation.encode_json)


@dataclasses.dataclass(frozen=True)
class SettleResult:
    settled: list[Job]
    lost: list[int]  # job ids whose lease was no longer held: outcome not applied
    claimed: list[Job]


@dataclasses.dataclass(frozen=True)
class Stats:
    counts: dict[str, int]  # every JobState value is a key, zero included
    oldest_pending_age: float | None  # seconds the oldest *runnable* pending job has waited
    stalled: int  # processing jobs whose lease has expired
    dead_letter: int
    total: int
    paused_queues: list[str] = dataclasses.field(default_factory=list)  # in scope
    waiting: int = 0  # pending jobs waiting for dependencies (counted in pending too)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class QueueControl:
    """What holds one queue back: a pause and limits (None: no such limit).

    Limits hold across every consumer and host: ``concurrency_limit`` jobs processing
    at once, ``rate_limit`` claims per ``rate_period`` seconds (a sliding window); the
    ``key_*`` limits apply per ``concurrency_key`` of the queue's jobs."""

    queue: str
    paused: bool
    paused_at: float | None
    paused_by: str | None
    pause_reason: str | None
    concurrency_limit: int | None
    key_concurrency_limit: int | None
    rate_limit: int | None
    key_rate_limit: int | None
    rate_period: float | None
    updated_at: float
    updated_by: str

    @classmethod
    def from_row(cls, row: Any) -> QueueControl:
        values = {f.name: row[f.name] for f in dataclasses.fields(cls)}
        values["paused"] = bool(values["paused"])
        return cls(**values)

    @property
    def limited(self) -> bool:
        return any(v is not None for v in self.limits().values())

    def limits(self) -> dict[str, int | float | None]:
        return {
            "concurrency_limit": self.concurrency_limit,
            "key_concurrency_limit": self.key_concurrency_limit,
            "rate_limit": self.rate_limit,
            "key_rate_limit": self.key_rate_limit,
            "rate_period": self.rate_period,
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ThroughputBucket:
    """Transitions recorded in one time bucket ``[start, start + bucket_seconds)``."""

    start: float
    enqueued: int
    completed: int  # completed by a consumer or marked done by an operator
    failed: int  # failed (retry later), dead-lettered or marked failed


@dataclasses.dataclass(frozen=True)
class Consumer:
    id: str
    host: str
    pid: int
    queues: str
    started_at: float
    last_heartbeat: float
    state: ConsumerState
    current_job_id: int | None
    jobs_done: int
    jobs_failed: int

    @classmethod
    def from_row(cls, row: Any) -> Consumer:
        values = {f.name: row[f.name] for f in dataclasses.fields(cls)}
        values["state"] = ConsumerState(values["state"])
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class JobFilter:
    """A filter over jobs, shared by listing, counting and bulk actions."""

    statuses: tuple[JobState, ...] = ()
    queue: str | None = None
    text: str | None = None  # substring of the payload or the error
    created_after: float | None = None
    created_before: float | None = None
    # A failure group's pattern (``FailureGroup.pattern``): the error, its first line or
    # its last line matches it, each <placeholder> standing for any text.
    error_group: str | None = None


class JobOrder(enum.StrEnum):
    """What a sorted job list is ordered by; ties are broken by id in the same direction."""

    CREATED = "created"  # the id: creation order
    PRIORITY = "priority"
    RUN_AT = "run_at"  # when the job is (or was) due to run
    UPDATED_AT = "updated_at"  # its last change
    ATTEMPTS = "attempts"


@dataclasses.dataclass(frozen=True)
class JobCursor:
    """One row's place in a sorted list: its sort value and id. ``encode`` makes a short
    URL-safe text of it and ``decode`` reads it back (``InvalidArgument`` if malformed)."""

    value: float
    id: int

    def encode(self) -> str:
        value = int(self.value) if float(self.value).is_integer() else self.value
        return f"{value!r}_{self.id}"

    @classmethod
    def decode(cls, text: str) -> JobCursor:
        from pqcore.exceptions import InvalidArgument

        value, _, ident = str(text).rpartition("_")
        try:
            number, job_id = float(value), int(ident)
        except ValueError:
            raise InvalidArgument(f"{str(text)[:40]!r} is not a page cursor") from None
        if job_id < 1 or number != number or number in (float("inf"), float("-inf")):
            raise InvalidArgument(f"{str(text)[:40]!r} is not a page cursor")
        return cls(number, job_id)


@dataclasses.dataclass(frozen=True)
class SortedPage:
    """A page of a sorted job list. Pass ``next`` back as ``after`` for the page that
    follows and ``previous`` as ``before`` for the one before (None: there is none)."""

    jobs: list[Job]
    next: JobCursor | None
    previous: JobCursor | None


@dataclasses.dataclass(frozen=True)
class FailureGroup:
    """Failed and dead-lettered jobs whose errors differ only in paths, numbers and ids."""

    pattern: str  # the error line with <path>, <n>, <hex>, <uuid>, <str> for what varies
    exception: str  # the exception type the error names ("" when it names none)
    jobs: int  # how many of the sampled jobs
    dead: int  # of them, dead-lettered (the rest are failed, waiting for a retry)
    example: str  # the newest error of the group as written (its first 500 characters)


@dataclasses.dataclass(frozen=True)
class QueueThroughput:
    """One queue's transitions since a time, from the history."""

    queue: str
    enqueued: int
    completed: int  # completed by a consumer or marked done by an operator
    failed: int  # failed (retry later), dead-lettered or marked failed


@dataclasses.dataclass(frozen=True)
class Page:
    """A page of jobs in id order; pass ``next_cursor`` back to get the next one."""

    jobs: list[Job]
    next_cursor: int | None
