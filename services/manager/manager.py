"""The manager: an elected leader that keeps every job moving.

Two cadences (docs/architecture.md explains the choice):

* every ``rescue_interval`` (default 5 s), cheap and urgent: processing jobs whose
  lease expired (a crashed consumer) back to pending, failed jobs whose backoff is
  over back to pending (out of attempts: dead-letter queue), consumers whose
  heartbeats stopped marked dead, and newly dead-lettered jobs announced;
* every ``check_interval`` (default 300 s, the design's health check): jobs
  processing longer than ``stall_timeout`` taken back even if something still
  heartbeats, done jobs older than ``retention`` purged (if set), long-gone consumers
  forgotten, and the oldest-pending / backlog thresholds checked.

and every ``schedule_interval`` (default 1 s, so a per-second cron is on time) the
periodic jobs' due ticks enqueued, each exactly once (``pqcore.schedules``).

Only the holder of the leadership lease acts; it renews the lease on every loop
(at least every ``leader_ttl/3``) and resigns on SIGTERM, so a second manager, or a
restarted one, never double-acts. Every step is a guarded pqcore call, so even a
leader that lost its lease while paused cannot corrupt a job.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TypeVar

from loguru import logger

from pqcore import Job, JobState, PQError, Queue, TickResult
from pqcore.rescue import ClockWatch, ConfirmedRescue
from pqcore.schedules import MAX_GRACE_SECONDS, MISFIRE_GRACE_SECONDS
from services.common import liveness
from services.common.signals import StopRequest
from services.manager import metrics
from services.manager.events import BUS, EventBus, EventKind, ManagerEvent
from services.manager.schedule_metrics import SCHEDULE_TICKS

T = TypeVar("T")
LEADERSHIP = "manager"
BATCH = 1000
MAX_BATCHES = 50  # per step and cycle: a huge backlog is worked off over a few cycles


# ManagerSettings fields an operator may change while the manager runs (pqcore.runtime).
RUNTIME_SETTINGS = (
    "stall_timeout",
    "consumer_timeout",
    "retention",
    "oldest_pending_threshold",
    "backlog_threshold",
    "misfire_grace",
)


@dataclasses.dataclass(frozen=True)
class ManagerSettings:
    check_interval: float = 300.0
    rescue_interval: float = 5.0
    stall_timeout: float = 3600.0
    consumer_timeout: float = 90.0  # heartbeat silence before a consumer is declared dead
    retention: float = 0.0  # purge done jobs finished longer ago; 0 keeps them
    consumer_retention: float = 86_400.0  # forget stopped/dead consumers after this
    leader_ttl: float = 15.0
    oldest_pending_threshold: float = 600.0  # 0 disables the event
    backlog_threshold: int = 1000  # pending jobs; 0 disables the event
    schedule_interval: float = 1.0  # how often due ticks of periodic jobs are enqueued
    misfire_grace: float = MISFIRE_GRACE_SECONDS  # older ticks were missed (catch-up policy)

    def __post_init__(self) -> None:
        for name in (
            "check_interval",
            "rescue_interval",
            "stall_timeout",
            "consumer_timeout",
            "leader_ttl",
            "schedule_interval",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name.replace('_', '-')} must be positive")
        if not 1 <= self.misfire_grace <= MAX_GRACE_SECONDS:
            raise ValueError(f"misfire-grace must be from 1 to {MAX_GRACE_SECONDS:g} seconds")

    @property
    def loop_seconds(self) -> float:
        """How often the manager wakes: renews its lease and runs due cycles."""
        return min(self.rescue_interval, self.check_interval, self.leader_ttl / 3)


class Manager:
    def __init__(
        self,
        queue: Queue,
        settings: ManagerSettings,
        *,
        manager_id: str,
        stop: StopRequest | None = None,
        bus: EventBus = BUS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self.base_settings = settings  # flags and PQ_* variables: operators' values win
        self.settings = settings
        self.manager_id = manager_id
        self.stop = stop or StopRequest()
        self.bus = bus
        self.clock = clock
        self.is_leader = False
        self._announced: bool | None = None  # the role last logged
        self._event_cursor = 0
        self.lease_rescue = ConfirmedRescue(queue, clock=clock)
        self.clock_watch = ClockWatch(clock=clock)

    def run(self) -> int:
        self._event_cursor = self.queue.last_event_id()
        next_rescue = next_check = next_ticks = self.clock()
        try:
            while not self.stop.requested:
                liveness.beat()
                self._pick_up_runtime_settings()
                now = self.clock()
                if self._elect():
                    if now >= next_ticks:
                        self._step("enqueue due ticks", self.enqueue_due_ticks)
                        next_ticks = now + self.settings.schedule_interval
                    if now >= next_rescue:
                        self._timed(self.rescue_cycle)
                        next_rescue = now + self.settings.rescue_interval
                    if now >= next_check:
                        self._timed(self.health_cycle)
                        next_check = now + self.settings.check_interval
                    wake = min(
                        next_rescue, next_check, next_ticks, now + self.settings.leader_ttl / 3
                    )
                else:
                    self._follow_event_cursor()
                    wake = now + self.settings.loop_seconds
                liveness.wait(self.stop, wake - self.clock())
        finally:
            self._resign()
            self.bus.close()
        return 0

    def _pick_up_runtime_settings(self) -> None:
        """Apply what operators changed with ``pq config`` (re-read every few seconds)."""
        try:
            values = {
                name: self.queue.runtime_value(name, getattr(self.base_settings, name))
                for name in RUNTIME_SETTINGS
            }
            updated = dataclasses.replace(self.base_settings, **values)
        except (PQError, ValueError) as error:
            logger.warning("runtime settings not applied: {}", error)
            return
        if updated != self.settings:
            changed = {
                name: getattr(updated, name)
                for name in RUNTIME_SETTINGS
                if getattr(updated, name) != getattr(self.settings, name)
            }
            logger.info("runtime settings changed: {}", changed)
            self.settings = updated

    # ------------------------------------------------------------ leadership

    def _elect(self) -> bool:
        try:
            leader = self.queue.leader_attempt_elect(
                LEADERSHIP, self.manager_id, self.settings.leader_ttl
            )
        except PQError as error:
            logger.warning("leader election failed: {}", error)
            leader = False
        if leader != self._announced:
            self._announced = leader
            if leader:
                logger.info("manager {} is now the leader", self.manager_id)
            else:
                holder = self._safe(lambda: self.queue.leader(LEADERSHIP))
                logger.info(
                    "manager {} is standing by (leader: {})",
                    self.manager_id,
                    holder[0] if holder else "unknown",
                )
        self.is_leader = leader
        metrics.IS_LEADER.set(1 if leader else 0)
        return leader

    def _resign(self) -> None:
        if not self.is_leader:
            return
        try:
            self.queue.leader_resign(LEADERSHIP, self.manager_id)
            logger.info("manager {} resigned the leadership", self.manager_id)
        except PQError as error:
            logger.warning("could not resign the leadership: {}", error)
        self.is_leader = False
        metrics.IS_LEADER.set(0)

    # ------------------------------------------------------------ cycles

    def _timed(self, cycle: Callable[[], None]) -> None:
        started = time.monotonic()
        cycle()
        metrics.CYCLES.inc()
        metrics.CYCLE_SECONDS.observe(time.monotonic() - started)

    def rescue_cycle(self) -> None:
        self._step("read the queue's clock", self._watch_clock)
        self._step("rescue expired leases", self._rescue_expired)
        self._step("schedule retries", self._schedule_retries)
        self._step("mark dead consumers", self._mark_dead_consumers)
        self._step("announce dead letters", self._announce_dead_letters)

    def health_cycle(self) -> None:
        self._step("read the queue's clock", self._watch_clock)
        self._step("rescue stalled jobs", self._rescue_stalled)
        if self.settings.retention > 0:
            self._step("purge done jobs", self._purge_done)
        self._step("forget old consumers", self._purge_consumers)
        self._step("check thresholds", self._check_thresholds)

    def _step(self, name: str, action: Callable[[], None]) -> None:
        """One failing step (a busy or unreachable database) must not stop the others."""
        liveness.beat()  # a cycle of many big batches is progress, not a hang
        try:
            action()
        except PQError as error:
            logger.error("{} failed: {}; next cycle retries", name, error)

    def _safe(self, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except PQError:
            return None

    # ------------------------------------------------------------ steps

    def enqueue_due_ticks(self) -> None:
        """Periodic jobs: every due tick enqueued once, whatever another manager does."""
        results = self.queue.tick_schedules(
            actor=self.manager_id, misfire_grace_seconds=self.settings.misfire_grace
        )
        for result in results:
            self._ticked(result)

    def _ticked(self, result: TickResult) -> None:
        if result.error is not None:
            logger.error("schedule={} tick refused: {}; retried next loop", result.schedule,
                         result.error)  # fmt: skip
            return
        for job in result.jobs:
            SCHEDULE_TICKS.labels(schedule=result.schedule, outcome="enqueued").inc()
            logger.info("schedule={} tick={:.0f} enqueued job={} queue={}", result.schedule,
                        job.run_at, job.id, job.queue)  # fmt: skip
        if result.skipped or not result.counted_all:
            SCHEDULE_TICKS.labels(schedule=result.schedule, outcome="skipped").inc(result.skipped)
            logger.warning(
                "schedule={} skipped {}{} missed tick(s) up to tick={:.0f} (catch-up policy)",
                result.schedule,
                "" if result.counted_all else "at least ",
                result.skipped,
                result.last_tick_at or 0.0,
            )

    def _rescue_expired(self) -> None:
        # Confirmed: a lease found expired is rescued only if a look half its lease
        # later (this host's monotonic clock) finds it still unrenewed, so a wall-clock
        # step of the queue's clock (the database host's, or on SQLite this host's)
        # takes no job from a live holder (pqcore.rescue).
        for _ in range(MAX_BATCHES):
            jobs = self.lease_rescue.rescue_expired(limit=BATCH)
            for job in jobs:
                self._rescued(job, "lease_expired")
            if len(jobs) < BATCH:
                return

    def _watch_clock(self) -> None:
        keep = max(self.settings.stall_timeout, self.settings.consumer_timeout)
        self.clock_watch.sample(self.queue.clock_now(), keep=keep)

    def _rescue_stalled(self) -> None:
        # A forward step of the queue's clock ages every running job at once: the
        # timeout grows by the step while jobs started before it can still run.
        step = self.clock_watch.forward_step(self.settings.stall_timeout)
        longer = self.settings.stall_timeout + step
        if step:
            logger.warning("queue clock stepped {:.0f}s: stall timeout {:.0f}s", step, longer)
        for _ in range(MAX_BATCHES):
            jobs = self.queue.rescue_stalled(longer, limit=BATCH)
            for job in jobs:
                self._rescued(job, "stall_timeout")
            if len(jobs) < BATCH:
                return

    def _rescued(self, job: Job, reason: str) -> None:
        if job.status is JobState.PERMANENTLY_FAILED:
            metrics.DEAD_LETTERED.inc()
            logger.warning(
                "dead-lettered job={} ({}; out of attempts {}/{})",
                job.id,
                reason,
                job.attempts,
                job.max_attempts,
            )
            return
        metrics.STALLED_RECOVERED.labels(reason=reason).inc()
        logger.warning(
            "rescued job={} back to pending ({}, attempt {}/{})",
            job.id,
            reason,
            job.attempts,
            job.max_attempts,
        )
        self.bus.publish(
            ManagerEvent(
                EventKind.STALLED_RECOVERED,
                job_id=job.id,
                payload=job.data,
                queue=job.queue,
                error=job.error,
                attempts=job.attempts,
                max_attempts=job.max_attempts,
                reason=reason,
            )
        )

    def _schedule_retries(self) -> None:
        for _ in range(MAX_BATCHES):
            jobs = self.queue.schedule_retries(limit=BATCH)
            for job in jobs:
                if job.status is JobState.PERMANENTLY_FAILED:
                    metrics.DEAD_LETTERED.inc()
                    logger.warning(
                        "dead-lettered job={} (out of attempts {}/{})",
                        job.id,
                        job.attempts,
                        job.max_attempts,
                    )
                else:
                    metrics.JOBS_RETRIED.inc()
                    logger.info(
                        "retrying job={} (attempt {} of {})",
                        job.id,
                        job.attempts + 1,
                        job.max_attempts,
                    )
            if len(jobs) < BATCH:
                return

    def _mark_dead_consumers(self) -> None:
        # Likewise a forward step silences every consumer at once until its next beat.
        timeout = self.settings.consumer_timeout
        timeout += self.clock_watch.forward_step(timeout)
        for consumer_id in self.queue.consumers_mark_dead(timeout):
            metrics.CONSUMERS_MARKED_DEAD.inc()
            logger.warning(
                "consumer {} declared dead (no heartbeat for {}s)",
                consumer_id,
                self.settings.consumer_timeout,
            )
            self.bus.publish(
                ManagerEvent(
                    EventKind.CONSUMER_DEAD,
                    consumer_id=consumer_id,
                    value=self.settings.consumer_timeout,
                )
            )

    def _announce_dead_letters(self) -> None:
        """Every job entering the dead-letter queue, whoever moved it there (a consumer's
        non-retryable failure, the manager, an operator), becomes one event."""
        top = self.queue.last_event_id()
        events = self.queue.events_after(
            self._event_cursor, to_status=JobState.PERMANENTLY_FAILED, limit=BATCH
        )
        events = [e for e in events if e.id <= top]
        self._event_cursor = events[-1].id if len(events) == BATCH else top
        for event in events:
            try:
                job: Job | None = self.queue.get(event.job_id)
            except PQError:  # purged meanwhile: announce what the history row holds
                job = None
            self.bus.publish(
                ManagerEvent(
                    EventKind.DEAD_LETTERED,
                    at=event.at,
                    job_id=event.job_id,
                    payload=getattr(job, "data", None),
                    queue=getattr(job, "queue", None),
                    error=getattr(job, "error", None) or event.detail,
                    attempts=event.attempt,
                    max_attempts=getattr(job, "max_attempts", None),
                    reason=event.action,
                    consumer_id=event.actor,
                )
            )

    def _follow_event_cursor(self) -> None:
        """A standby keeps up, so on taking over it announces only what is new."""
        cursor = self._safe(self.queue.last_event_id)
        if cursor is not None:
            self._event_cursor = cursor

    def _purge_done(self) -> None:
        total = 0
        for _ in range(MAX_BATCHES):
            n = self.queue.purge_done(self.settings.retention, limit=BATCH)
            total += n
            if n < BATCH:
                break
        if total:
            metrics.JOBS_PURGED.inc(total)
            logger.info("purged {} done job(s) older than {}s", total, self.settings.retention)

    def _purge_consumers(self) -> None:
        n = self.queue.consumers_purge(self.settings.consumer_retention)
        if n:
            logger.info("forgot {} stopped or dead consumer(s)", n)

    def _check_thresholds(self) -> None:
        stats = self.queue.stats()
        age = stats.oldest_pending_age or 0.0
        limit = self.settings.oldest_pending_threshold
        if limit > 0 and age > limit:
            logger.warning("oldest pending job has waited {:.0f}s (threshold {:.0f}s)", age, limit)
            self.bus.publish(
                ManagerEvent(
                    EventKind.OLDEST_PENDING_OVER_THRESHOLD,
                    value=age,
                    threshold=limit,
                    counts=stats.counts,
                )
            )
        pending = stats.counts.get(JobState.PENDING.value, 0)
        backlog = self.settings.backlog_threshold
        if backlog > 0 and pending > backlog:
            logger.warning("backlog: {} pending job(s) (threshold {})", pending, backlog)
            self.bus.publish(
                ManagerEvent(
                    EventKind.BACKLOG, value=pending, threshold=backlog, counts=stats.counts
                )
            )
