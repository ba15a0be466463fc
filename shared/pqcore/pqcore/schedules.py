"""Periodic jobs: cron schedules whose ticks the elected manager enqueues exactly once.

A schedule names a cron expression (``croniter``'s syntax: 5 fields, or 6 with seconds
last), a timezone the expression is read in, and the job each tick enqueues. The
manager calls ``enqueue_due_ticks`` every loop. For each schedule with ticks due, one
write transaction

1. reads the queue's clock (on PostgreSQL the server's, ``clock_now``),
2. works out the ticks ``t`` with ``last_tick_at < t <= now`` and what the catch-up
   policy does with them,
3. moves ``last_tick_at`` forward with a compare-and-set on the value it read
   (``schedule_advance``): if another manager moved it first, nothing is enqueued,
4. enqueues the tick jobs through the queue's insert path, each with the dedupe key
   ``schedule:<name>:<tick in epoch seconds>`` and ``schedule:<name>`` in its history.

So a tick's job and the schedule's record of it commit together or not at all: a
manager killed mid-way, a restart, a failover or two managers racing can neither double
nor drop a tick. A new schedule counts from its creation (no back-fill). Ticks older
than ``misfire_grace_seconds`` when handled were missed (no manager ran, or the clock
jumped forward): ``catch_up`` says what happens to them, and every one not enqueued is
counted in ``ticks_skipped``. A clock stepping backwards enqueues nothing until it
passes ``last_tick_at`` again. While paused nothing is enqueued; resuming skips (and
counts) the ticks that fell due meanwhile.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import zoneinfo
from typing import TYPE_CHECKING, Any

from croniter import CroniterBadDateError, CroniterError, croniter

from pqcore.core import QueueCore
from pqcore.driver import Session
from pqcore.exceptions import InvalidArgument, ScheduleNotFound
from pqcore.models import EnqueueRequest, Job
from pqcore.validation import enqueue_values, finite

CATCH_UP_POLICIES = ("skip", "one", "all")
SCHEDULE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_CATCH_UP_LIMIT = 1000
MISFIRE_GRACE_SECONDS = 60.0  # a manager failover (leader TTL 15 s) stays well inside it
MAX_GRACE_SECONDS = 3600.0
# Ticks looked at per schedule and pass, newest first. Past this many (a per-second
# schedule after hours without a manager) the older ones are skipped without being
# counted one by one: the count is then a lower bound (``TickResult.counted_all``).
MAX_TICKS_PER_PASS = 10_000


@dataclasses.dataclass(frozen=True)
class Schedule:
    name: str
    cron: str
    timezone: str
    data: str
    queue: str
    priority: int
    max_attempts: int | None  # None: the queue's default when a tick is enqueued
    catch_up: str  # skip | one | all
    catch_up_limit: int
    paused: bool
    last_tick_at: float | None  # the newest tick handled (enqueued or skipped)
    last_job_id: int | None  # the job of the newest tick enqueued
    last_enqueued_at: float | None  # when that job was enqueued (the queue's clock)
    ticks_enqueued: int
    ticks_skipped: int
    created_at: float
    created_by: str
    updated_at: float
    next_run_at: float | None = None  # the next tick to handle; None while paused

    @classmethod
    def from_row(cls, row: Any, next_run_at: float | None = None) -> Schedule:
        values = {f.name: row[f.name] for f in dataclasses.fields(cls) if f.name != "next_run_at"}
        values["paused"] = bool(values["paused"])  # SQLite keeps 0/1
        for name in _TIMES:  # SQLite returns a REAL that holds a whole number as an int
            if values[name] is not None:
                values[name] = float(values[name])
        return cls(**values, next_run_at=next_run_at)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def audit_value(self) -> dict[str, Any]:
        """What the audit trail records of a schedule: its definition."""
        keep = ("cron", "timezone", "data", "queue", "priority", "max_attempts", "catch_up",
                "catch_up_limit", "paused")  # fmt: skip
        return {key: getattr(self, key) for key in keep}


_TIMES = ("last_tick_at", "last_enqueued_at", "created_at", "updated_at")


@dataclasses.dataclass(frozen=True)
class TickResult:
    """What one pass did for one schedule."""

    schedule: str
    jobs: list[Job]  # enqueued, oldest tick first
    skipped: int  # missed ticks not enqueued (the catch-up policy)
    last_tick_at: float | None  # the newest tick handled (None: refused, see error)
    counted_all: bool = True  # False: more ticks were skipped than ``skipped`` says
    by: str = ""  # the caller (the manager)
    error: str | None = None  # why nothing could be enqueued; the ticks stay due


@dataclasses.dataclass(frozen=True)
class _Plan:
    enqueue: list[float]  # ticks to enqueue, oldest first
    skipped: int
    newest: float
    counted_all: bool


class Schedules(QueueCore):
    # ---------------------------------------------------------------- managing

    def add_schedule(
        self,
        name: str,
        cron: str,
        *,
        data: str,
        queue: str = "default",
        timezone: str = "UTC",
        priority: int = 0,
        catch_up: str = "skip",
        catch_up_limit: int = 100,
        max_attempts: int | None = None,
        actor: str,
    ) -> Schedule:
        """Add a schedule; its first tick is the first after now. A name is taken once
        (remove the old schedule first). Bad input raises ``InvalidArgument``."""
        check_schedule_name(name)
        zone = check_timezone(timezone)
        check_cron(cron, zone)
        # The tick job's own checks (payload, queue, priority, attempts), made now.
        enqueue_values(EnqueueRequest(data, queue, priority, max_attempts=max_attempts),
                       self.settings)  # fmt: skip
        if catch_up not in CATCH_UP_POLICIES:
            raise InvalidArgument(f"catch-up must be one of {', '.join(CATCH_UP_POLICIES)},"
                                  f" not {catch_up!r}")  # fmt: skip
        check_catch_up_limit(catch_up_limit)
        check_actor(actor)
        params = {
            "name": name, "cron": cron, "timezone": timezone, "data": data, "queue": queue,
            "priority": priority, "max_attempts": max_attempts, "catch_up": catch_up,
            "catch_up_limit": catch_up_limit, "paused": False, "actor": actor,
        }  # fmt: skip

        def body(session: Session) -> Schedule:
            now = self._clock(session)
            row = session.one("schedule_insert", {**params, "now": now})
            if row is None:
                raise InvalidArgument(
                    f"schedule {name!r} already exists (pq schedule remove it first)"
                )
            schedule = _with_next_run(row)
            self._audit(session, actor=actor, action="schedule_add", target=_target(name),
                        new=schedule.audit_value(), now=now)  # fmt: skip
            return schedule

        return self.driver.write(body)

    def schedules(self) -> list[Schedule]:
        """Every schedule, by name, with ``next_run_at`` computed."""
        return self.driver.read(
            lambda session: [_with_next_run(row) for row in session.all("schedules_all")]
        )

    def schedule(self, name: str) -> Schedule:
        """One schedule; ``ScheduleNotFound`` if there is none of that name."""
        return self.driver.read(lambda session: _with_next_run(self._schedule_row(session, name)))

    def remove_schedule(self, name: str, *, actor: str) -> Schedule:
        """Delete a schedule (the jobs its ticks enqueued stay). Returns it as it was."""
        check_actor(actor)

        def body(session: Session) -> Schedule:
            now = self._clock(session)
            row = session.one("schedule_delete", {"name": name})
            if row is None:
                raise ScheduleNotFound(name)
            schedule = Schedule.from_row(row)
            self._audit(session, actor=actor, action="schedule_remove", target=_target(name),
                        old=schedule.audit_value(), now=now)  # fmt: skip
            return schedule

        return self.driver.write(body)

    def pause_schedule(self, name: str, *, actor: str) -> Schedule:
        """Stop enqueueing ticks. Pausing a paused schedule changes nothing."""
        check_actor(actor)

        def body(session: Session) -> Schedule:
            now = self._clock(session)
            row = session.one("schedule_pause", {"name": name, "paused": True, "now": now})
            if row is None:  # unknown, or paused already
                return _with_next_run(self._schedule_row(session, name))
            self._audit(session, actor=actor, action="schedule_pause", target=_target(name),
                        old={"paused": False}, new={"paused": True}, now=now)  # fmt: skip
            return _with_next_run(row)

        return self.driver.write(body)

    def resume_schedule(self, name: str, *, actor: str) -> Schedule:
        """Enqueue ticks again, from the first after now: the ticks that fell due while
        it was paused are skipped and counted in ``ticks_skipped``. Resuming a running
        schedule changes nothing."""
        check_actor(actor)

        def body(session: Session) -> Schedule:
            now = self._clock(session)
            row = self._schedule_row(session, name, lock=True)
            current = Schedule.from_row(row)
            if not current.paused:
                return _with_next_run(row)
            missed, counted_all = _due(current, now)  # every one of them is skipped
            params = {
                "name": name, "paused": False, "now": now,
                "last_tick_at": missed[0] if missed else None, "skipped": len(missed),
            }  # fmt: skip
            row = session.one("schedule_resume", params)
            if row is None:  # cannot happen under the row lock; guarded all the same
                raise ScheduleNotFound(name)
            at_least = "" if counted_all else "at least "
            detail = f"{at_least}{len(missed)} tick(s) due while paused skipped"
            self._audit(session, actor=actor, action="schedule_resume", target=_target(name),
                        old={"paused": True}, new={"paused": False}, detail=detail,
                        now=now)  # fmt: skip
            return _with_next_run(row)

        return self.driver.write(body)

    # ---------------------------------------------------------------- ticking

    def enqueue_due_ticks(
        self, *, actor: str, misfire_grace_seconds: float = MISFIRE_GRACE_SECONDS
    ) -> list[Job]:
        """Enqueue every schedule's due ticks, each exactly once (the elected manager calls
        this every loop; see the module's docstring). Returns the jobs enqueued. A
        schedule whose tick job is refused (say its payload is over a since-lowered size
        limit) raises ``InvalidArgument`` once the other schedules ran."""
        results = self.tick_schedules(actor=actor, misfire_grace_seconds=misfire_grace_seconds)
        refused = [f"schedule {r.schedule!r}: {r.error}" for r in results if r.error]
        if refused:
            raise InvalidArgument("; ".join(refused))
        return [job for result in results for job in result.jobs]

    def tick_schedules(
        self, *, actor: str, misfire_grace_seconds: float = MISFIRE_GRACE_SECONDS
    ) -> list[TickResult]:
        """``enqueue_due_ticks``, reporting per schedule what was enqueued and skipped
        (one result per schedule that had ticks due and whose ticks this call handled).

        ``actor`` names the caller (the manager) in the results; the tick jobs' history
        names ``schedule:<name>``."""
        check_actor(actor)
        grace = finite(misfire_grace_seconds, "misfire_grace_seconds")
        if not 1 <= grace <= MAX_GRACE_SECONDS:
            raise InvalidArgument(f"misfire_grace_seconds must be from 1 to {MAX_GRACE_SECONDS:g}")

        def due(session: Session) -> list[Schedule]:
            now = self._clock(session)
            rows = [Schedule.from_row(row) for row in session.all("schedules_all")]
            return [s for s in rows if not s.paused and _first_tick_after(s) <= now]

        results: list[TickResult] = []
        # A cheap read finds the schedules with something due; only those take the write
        # lock, each in a transaction of its own (one schedule's trouble holds up no other).
        for schedule in self.driver.read(due):
            try:
                result = self.driver.write(
                    lambda s, schedule=schedule: self._tick(s, schedule, grace, actor)  # type: ignore[misc]
                )
            except InvalidArgument as error:  # nothing of it was written
                result = TickResult(schedule.name, [], 0, None, by=actor, error=str(error))
            if result is not None:
                results.append(result)
        return results

    def _tick(
        self, session: Session, schedule: Schedule, grace: float, by: str
    ) -> TickResult | None:
        now = self._clock(session)
        plan = _plan(schedule, now, grace)
        if plan is None:  # nothing due any more (the clock stepped back)
            return None
        advanced = session.one(
            "schedule_advance",
            {
                "name": schedule.name,
                "created_at": schedule.created_at,
                "expected": schedule.last_tick_at,
                "last_tick_at": plan.newest,
                "enqueued": len(plan.enqueue),
                "skipped": plan.skipped,
                "now": now,
            },
        )
        if advanced is None:  # another manager handled these ticks, or it was changed
            return None
        actor = _target(schedule.name)
        jobs = []
        for tick in plan.enqueue:
            request = EnqueueRequest(
                schedule.data, schedule.queue, schedule.priority, run_at=tick,
                dedupe_key=tick_dedupe_key(schedule.name, tick),
                max_attempts=schedule.max_attempts,
            )  # fmt: skip
            values = enqueue_values(request, self.settings)
            jobs.append(self._insert_deduped(session, {**values, "now": now, "actor": actor}))
        if jobs:
            session.run("schedule_last_job", {"name": schedule.name, "job_id": jobs[-1].id,
                                              "now": now})  # fmt: skip
            session.notify([schedule.queue])
        return TickResult(schedule.name, jobs, plan.skipped, plan.newest, plan.counted_all, by)

    # ---------------------------------------------------------------- helpers

    def _clock(self, session: Session) -> float:
        """The queue's clock as a number, read in the caller's transaction (on PostgreSQL
        the server's transaction time, which every :now of that transaction is)."""
        row = session.one("clock_now", {"now": self._now()})
        assert row is not None
        return float(row["now"])

    if TYPE_CHECKING:  # Queue's insert path, which this class is mixed into

        @staticmethod
        def _insert_deduped(session: Session, values: dict[str, Any]) -> Job:
            raise NotImplementedError

    @staticmethod
    def _schedule_row(session: Session, name: str, *, lock: bool = False) -> Any:
        row = session.one("schedule_get_locked" if lock else "schedule_get", {"name": name})
        if row is None:
            raise ScheduleNotFound(name)
        return row


# -------------------------------------------------------------------- validation


def check_schedule_name(name: object) -> str:
    if not isinstance(name, str) or not SCHEDULE_NAME.match(name):
        raise InvalidArgument(f"invalid schedule name {name!r}: 1-64 letters, digits or _.:-")
    return name


def check_timezone(name: object) -> zoneinfo.ZoneInfo:
    if not isinstance(name, str) or not name:
        raise InvalidArgument("timezone must be an IANA name such as UTC or Europe/Berlin")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(
            f"unknown timezone {name!r}: use an IANA name such as UTC or Europe/Berlin"
        ) from None


def check_cron(expression: object, zone: zoneinfo.ZoneInfo) -> str:
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidArgument("cron expression is empty")
    try:
        croniter(expression, dt.datetime.now(zone)).get_next(float)
    except CroniterBadDateError:
        raise InvalidArgument(f"cron expression {expression!r} never fires") from None
    except (CroniterError, ValueError, TypeError) as error:
        why = str(error).strip() or type(error).__name__
        raise InvalidArgument(f"invalid cron expression {expression!r}: {why}") from None
    return expression


def check_catch_up_limit(limit: object) -> int:
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not 1 <= limit <= MAX_CATCH_UP_LIMIT
    ):
        raise InvalidArgument(f"catch-up limit must be an integer from 1 to {MAX_CATCH_UP_LIMIT},"
                              f" not {limit!r}")  # fmt: skip
    return limit


def check_actor(actor: object) -> None:
    if not isinstance(actor, str) or not actor.strip():
        raise InvalidArgument("a schedule change needs the operator's name (actor)")


def tick_dedupe_key(name: str, tick: float) -> str:
    """The dedupe key of a tick's job: one per schedule and scheduled second."""
    return f"schedule:{name}:{round(tick)}"


# -------------------------------------------------------------------- tick arithmetic


def _target(name: str) -> str:
    return f"schedule:{name}"


def _base(schedule: Schedule) -> float:
    """Ticks after this are due: the newest one handled, else the creation time."""
    return schedule.created_at if schedule.last_tick_at is None else schedule.last_tick_at


def _cron(schedule: Schedule, start: float) -> croniter[float]:
    zone = zoneinfo.ZoneInfo(schedule.timezone)
    return croniter(schedule.cron, dt.datetime.fromtimestamp(start, zone))


def _first_tick_after(schedule: Schedule) -> float:
    """The next tick to handle; infinity for a cron that fires no more."""
    try:
        return _cron(schedule, _base(schedule)).get_next(float)
    except CroniterBadDateError:
        return math.inf


def _with_next_run(row: Any) -> Schedule:
    """The schedule with ``next_run_at``: the first tick after the newest one handled,
    which lies in the past (overdue) while no manager runs."""
    schedule = Schedule.from_row(row)
    if schedule.paused:
        return schedule
    following = _first_tick_after(schedule)
    return dataclasses.replace(schedule, next_run_at=None if math.isinf(following) else following)


def _due(schedule: Schedule, now: float) -> tuple[list[float], bool]:
    """The ticks in (base, now], newest first, at most ``MAX_TICKS_PER_PASS`` of them;
    and whether that was all of them."""
    base = _base(schedule)
    if now <= base:
        return [], True
    # Ticks fall on whole seconds: walking back from just past floor(now) includes now.
    walk = _cron(schedule, math.floor(now) + 1)
    ticks: list[float] = []
    while True:
        try:
            tick = walk.get_prev(float)
        except CroniterBadDateError:  # no earlier tick at all
            return ticks, True
        if tick <= base:
            return ticks, True
        if len(ticks) == MAX_TICKS_PER_PASS:
            return ticks, False
        ticks.append(tick)


def _plan(schedule: Schedule, now: float, grace: float) -> _Plan | None:
    """What to do with the ticks in (base, now], or None if there are none.

    Ticks at or after ``now - grace`` are on time and always enqueued. Older ones were
    missed: the catch-up policy enqueues none of them (skip), the newest (one) or the
    newest ``catch_up_limit`` (all); the others are skipped."""
    ticks, counted_all = _due(schedule, now)
    if not ticks:
        return None
    on_time = [t for t in ticks if t >= now - grace]
    missed = ticks[len(on_time) :]  # newest first, as ticks are
    keep = {"skip": 0, "one": 1, "all": schedule.catch_up_limit}[schedule.catch_up]
    enqueue = sorted(on_time + missed[:keep])
    return _Plan(enqueue, len(missed[keep:]), ticks[0], counted_all)
