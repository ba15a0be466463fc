"""Periodic jobs: each tick enqueued exactly once, across racing queues, restarts, clock
steps, pauses and removal; bad input changes nothing; every change is audited."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

from pqcore import InvalidArgument, Job, Queue, Schedule, ScheduleNotFound
from tests.backends import FakeClock, QueueMaker
from tests.conformance.helpers import snapshot

# The fixture clock starts at 1_800_000_000, a whole minute (and hour: 2027-01-15 08:00 UTC).
MINUTE = 60.0


def tick_keys(jobs: list[Job]) -> list[str]:
    return [job.dedupe_key or "" for job in jobs]


def key(name: str, tick: float) -> str:
    return f"schedule:{name}:{round(tick)}"


def all_jobs(queue: Queue) -> list[Job]:
    return sorted(queue.list_jobs(limit=1000).jobs, key=lambda j: j.id)


def every_minute(q: Queue, name: str = "m", **options: object) -> Schedule:
    return q.add_schedule(name, "* * * * *", data=f"{name}-tick", actor="ops", **options)  # type: ignore[arg-type]


def test_add_and_read_a_schedule(queue: Queue, clock: FakeClock) -> None:
    clock.advance(7)
    added = queue.add_schedule(
        "report", "*/5 * * * *", data="reports/daily", queue="reports", priority=3,
        timezone="Europe/Berlin", catch_up="all", catch_up_limit=4, max_attempts=2,
        actor="alice",
    )  # fmt: skip
    assert (added.name, added.cron, added.timezone, added.queue, added.data) == (
        "report", "*/5 * * * *", "Europe/Berlin", "reports", "reports/daily",
    )  # fmt: skip
    assert (added.priority, added.catch_up, added.catch_up_limit, added.max_attempts) == (
        3, "all", 4, 2,
    )  # fmt: skip
    assert added.paused is False and added.last_tick_at is None and added.last_job_id is None
    assert (added.ticks_enqueued, added.ticks_skipped) == (0, 0)
    assert (added.created_at, added.created_by) == (clock.now, "alice")
    assert added.next_run_at == 1_800_000_000 + 5 * MINUTE  # the first tick after creation
    every_minute(queue, "a-first")
    assert [s.name for s in queue.schedules()] == ["a-first", "report"]
    assert queue.schedule("report") == added
    assert queue.enqueue_due_ticks(actor="manager") == []  # nothing due yet
    [entry] = queue.audit_log(target="schedule:report")
    assert (entry.actor, entry.action, entry.at) == ("alice", "schedule_add", clock.now)
    assert entry.new_value is not None and json.loads(entry.new_value)["cron"] == "*/5 * * * *"


def test_each_tick_is_enqueued_once_with_its_key_and_history(
    queue: Queue, clock: FakeClock
) -> None:
    every_minute(queue, "m", queue="cron", priority=2, max_attempts=3)
    clock.advance(MINUTE + 2)  # the 1st tick, 2 s late
    [job] = queue.enqueue_due_ticks(actor="manager")
    tick = 1_800_000_000 + MINUTE
    assert (job.queue, job.data, job.priority, job.max_attempts) == ("cron", "m-tick", 2, 3)
    assert (job.dedupe_key, job.run_at) == (key("m", tick), tick)
    [event] = queue.history(job.id)
    assert (event.action, event.actor) == ("enqueue", "schedule:m")
    assert queue.enqueue_due_ticks(actor="manager") == []
    clock.advance(30)
    assert queue.enqueue_due_ticks(actor="manager") == []  # between ticks
    clock.advance(30)
    [second] = queue.enqueue_due_ticks(actor="manager")  # exactly on the tick
    assert second.dedupe_key == key("m", tick + MINUTE)
    schedule = queue.schedule("m")
    assert (schedule.last_tick_at, schedule.last_job_id) == (tick + MINUTE, second.id)
    assert (schedule.last_enqueued_at, schedule.ticks_enqueued) == (clock.now, 2)
    assert schedule.next_run_at == tick + 2 * MINUTE
    assert [j.id for j in all_jobs(queue)] == [job.id, second.id]


def test_a_new_schedule_does_not_back_fill(queue: Queue, clock: FakeClock) -> None:
    clock.advance(MINUTE - 1)  # one second before the tick at +60
    every_minute(queue)
    clock.advance(1)
    assert tick_keys(queue.enqueue_due_ticks(actor="manager")) == [key("m", clock.now)]
    clock.advance(3 * 3600)  # hours later: a brand-new schedule starts from now
    every_minute(queue, "late")
    clock.advance(MINUTE)
    got = {j.dedupe_key for j in queue.enqueue_due_ticks(actor="manager")}
    assert key("late", clock.now) in got
    assert [k for k in got if k and k.startswith("schedule:late:")] == [key("late", clock.now)]


@pytest.mark.parametrize("queues", [2, 3])
def test_racing_queues_never_double_a_tick(
    make_queue: QueueMaker, clock: FakeClock, queues: int
) -> None:
    """Several Queue objects (managers) on one database call enqueue_due_ticks at once,
    released together by a barrier, for every second of a per-second schedule."""
    racers = [make_queue(clock=clock) for _ in range(queues)]
    racers[0].add_schedule("s", "* * * * * *", data="tick", actor="ops")
    rounds = 25
    start = threading.Barrier(queues)
    done = threading.Barrier(queues)
    got: list[list[Job]] = [[] for _ in racers]
    errors: list[BaseException] = []

    def race(i: int) -> None:
        try:
            for _ in range(rounds):
                if i == 0:
                    clock.advance(1)
                start.wait(30)
                got[i] += racers[i].enqueue_due_ticks(actor=f"manager-{i}")
                done.wait(30)
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)
            start.abort()
            done.abort()

    threads = [threading.Thread(target=race, args=(i,)) for i in range(queues)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    keys = [k for jobs in got for k in tick_keys(jobs)]
    expected = [key("s", 1_800_000_000 + n) for n in range(1, rounds + 1)]
    assert sorted(keys) == sorted(expected)  # every tick once: none doubled, none dropped
    assert sorted(keys) == sorted(tick_keys(all_jobs(racers[0])))
    assert racers[0].schedule("s").ticks_enqueued == rounds
    assert racers[0].doctor() == []


def test_a_restart_continues_without_doubling_or_dropping(
    make_queue: QueueMaker, clock: FakeClock
) -> None:
    first = make_queue(clock=clock)
    every_minute(first)
    clock.advance(2 * MINUTE + 1)
    assert len(first.enqueue_due_ticks(actor="manager-a")) == 1  # +60 is past the grace
    first.close()
    clock.advance(30)  # the manager was down for a while, within the grace
    second = make_queue(clock=clock)  # a new process: nothing but the database carries over
    assert second.enqueue_due_ticks(actor="manager-b") == []
    clock.advance(MINUTE)
    assert tick_keys(second.enqueue_due_ticks(actor="manager-b")) == [
        key("m", 1_800_000_000 + 3 * MINUTE)
    ]
    assert tick_keys(all_jobs(second)) == [key("m", 1_800_000_000 + n * MINUTE) for n in (2, 3)]
    assert second.schedule("m").ticks_skipped == 1  # the +60 tick, older than the grace
    assert second.doctor() == []


def test_a_failover_inside_the_grace_drops_nothing(queue: Queue, clock: FakeClock) -> None:
    every_minute(queue)
    clock.advance(MINUTE)
    assert len(queue.enqueue_due_ticks(actor="manager-a")) == 1
    clock.advance(MINUTE + 45)  # no manager for 45 s after the next tick
    [late] = queue.enqueue_due_ticks(actor="manager-b")
    assert late.dedupe_key == key("m", 1_800_000_000 + 2 * MINUTE)
    assert queue.schedule("m").ticks_skipped == 0


@pytest.mark.parametrize(
    ("policy", "limit", "caught_up"),
    [("skip", 100, 0), ("one", 100, 1), ("all", 3, 3), ("all", 100, 9)],
)
def test_a_clock_step_forward_follows_the_catch_up_policy(
    queue: Queue, clock: FakeClock, policy: str, limit: int, caught_up: int
) -> None:
    every_minute(queue, catch_up=policy, catch_up_limit=limit)
    clock.advance(MINUTE)
    assert len(queue.enqueue_due_ticks(actor="manager")) == 1
    clock.advance(10 * MINUTE + 5)  # ticks +2..+11 min are due; +11 is 5 s old, on time
    [result] = queue.tick_schedules(actor="manager")
    on_time = 1_800_000_000 + 11 * MINUTE
    missed = [1_800_000_000 + n * MINUTE for n in range(2, 11)]  # 9 ticks past the grace
    expected = [*missed[len(missed) - caught_up :], on_time]  # the newest missed ones
    assert tick_keys(result.jobs) == [key("m", t) for t in expected]
    assert [j.run_at for j in result.jobs] == expected  # each at its own tick, oldest first
    assert (result.skipped, result.last_tick_at, result.counted_all) == (
        9 - caught_up, on_time, True,
    )  # fmt: skip
    schedule = queue.schedule("m")
    assert (schedule.ticks_enqueued, schedule.ticks_skipped) == (2 + caught_up, 9 - caught_up)
    assert schedule.last_tick_at == on_time and schedule.last_job_id == result.jobs[-1].id
    assert queue.enqueue_due_ticks(actor="manager") == []


def test_a_long_outage_is_skipped_in_one_bounded_pass(queue: Queue, clock: FakeClock) -> None:
    queue.add_schedule("s", "* * * * * *", data="tick", actor="ops", catch_up="all",
                       catch_up_limit=5)  # fmt: skip
    clock.advance(6 * 3600)  # 21,600 per-second ticks missed
    [result] = queue.tick_schedules(actor="manager")
    assert len(result.jobs) == 61 + 5  # the grace's 60 s (ends included), then 5 caught up
    assert result.counted_all is False and result.skipped > 0  # a lower bound, said so
    assert result.last_tick_at == clock.now
    clock.advance(1)
    assert tick_keys(queue.enqueue_due_ticks(actor="manager")) == [key("s", clock.now)]


def test_a_clock_step_backwards_enqueues_nothing_until_time_catches_up(
    queue: Queue, clock: FakeClock
) -> None:
    every_minute(queue)
    clock.advance(2 * MINUTE + 1)
    [done] = queue.enqueue_due_ticks(actor="manager")  # +60 is past the grace: skipped
    clock.advance(-30 * MINUTE)  # the clock jumps back half an hour
    assert queue.enqueue_due_ticks(actor="manager") == []
    clock.advance(29 * MINUTE)  # still before the last tick handled
    assert queue.enqueue_due_ticks(actor="manager") == []
    clock.advance(MINUTE)  # back at the last tick: still nothing new
    assert queue.enqueue_due_ticks(actor="manager") == []
    clock.advance(MINUTE)
    [after] = queue.enqueue_due_ticks(actor="manager")
    assert after.dedupe_key == key("m", 1_800_000_000 + 3 * MINUTE)
    assert [j.id for j in all_jobs(queue)] == [done.id, after.id]


def test_pause_and_resume(queue: Queue, clock: FakeClock) -> None:
    every_minute(queue)
    clock.advance(MINUTE)
    assert len(queue.enqueue_due_ticks(actor="manager")) == 1
    paused = queue.pause_schedule("m", actor="bob")
    assert paused.paused is True and paused.next_run_at is None
    assert queue.pause_schedule("m", actor="bob").paused  # again: no change, no audit row
    clock.advance(5 * MINUTE)
    assert queue.enqueue_due_ticks(actor="manager") == []
    clock.advance(20)
    resumed = queue.resume_schedule("m", actor="carol")
    # The 5 ticks due while paused are skipped, not enqueued late.
    assert (resumed.paused, resumed.ticks_skipped) == (False, 5)
    assert resumed.last_tick_at == 1_800_000_000 + 6 * MINUTE
    assert resumed.next_run_at == 1_800_000_000 + 7 * MINUTE
    assert queue.resume_schedule("m", actor="carol") == resumed  # running already
    assert queue.enqueue_due_ticks(actor="manager") == []
    clock.advance(40)
    assert tick_keys(queue.enqueue_due_ticks(actor="manager")) == [
        key("m", 1_800_000_000 + 7 * MINUTE)
    ]
    trail = [(e.action, e.actor, e.detail) for e in reversed(queue.audit_log(target="schedule:m"))]
    assert trail == [
        ("schedule_add", "ops", None),
        ("schedule_pause", "bob", None),
        ("schedule_resume", "carol", "5 tick(s) due while paused skipped"),
    ]


def test_remove(queue: Queue, clock: FakeClock) -> None:
    every_minute(queue)
    every_minute(queue, "kept")
    clock.advance(MINUTE)
    assert len(queue.enqueue_due_ticks(actor="manager")) == 2
    removed = queue.remove_schedule("m", actor="dave")
    assert removed.name == "m" and removed.ticks_enqueued == 1
    with pytest.raises(ScheduleNotFound, match="no schedule named 'm'"):
        queue.schedule("m")
    clock.advance(MINUTE)
    assert tick_keys(queue.enqueue_due_ticks(actor="manager")) == [
        key("kept", 1_800_000_000 + 2 * MINUTE)
    ]
    assert len(all_jobs(queue)) == 3  # the removed schedule's job stays
    [entry] = queue.audit_log(target="schedule:m", limit=1)
    assert (entry.action, entry.actor) == ("schedule_remove", "dave")
    assert entry.old_value is not None and json.loads(entry.old_value)["cron"] == "* * * * *"
    # The name is free again; the new schedule starts from now.
    every_minute(queue)
    clock.advance(MINUTE)
    assert key("m", clock.now) in tick_keys(queue.enqueue_due_ticks(actor="manager"))


@pytest.mark.parametrize(
    "action",
    [
        lambda q: q.schedule("nope"),
        lambda q: q.remove_schedule("nope", actor="ops"),
        lambda q: q.pause_schedule("nope", actor="ops"),
        lambda q: q.resume_schedule("nope", actor="ops"),
    ],
)
def test_unknown_schedules_are_not_found(queue: Queue, action: Callable[[Queue], object]) -> None:
    with pytest.raises(ScheduleNotFound):
        action(queue)
    assert queue.audit_log() == []


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"cron": "every minute"}, "invalid cron expression 'every minute'"),
        ({"cron": "61 * * * *"}, "invalid cron expression"),
        ({"cron": "0 0 30 2 *"}, "never fires"),
        ({"cron": ""}, "cron expression is empty"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone 'Mars/Olympus'"),
        ({"timezone": "../etc/passwd"}, "unknown timezone"),
        ({"catch_up_limit": -1}, "catch-up limit must be an integer from 1"),
        ({"catch_up_limit": 0}, "catch-up limit"),
        ({"catch_up": "some"}, "catch-up must be one of skip, one, all"),
        ({"data": "  "}, "payload is empty"),
        ({"queue": "no spaces"}, "invalid queue name"),
        ({"priority": 10**9}, "priority must be between"),
        ({"max_attempts": 0}, "max_attempts must be between"),
        ({"name": "bad name!"}, "invalid schedule name"),
        ({"name": "taken"}, "schedule 'taken' already exists"),
        ({"actor": " "}, "actor"),
    ],
)
def test_bad_input_changes_nothing(queue: Queue, options: dict[str, object], words: str) -> None:
    existing = queue.add_schedule("taken", "@hourly", data="x", actor="ops")
    before = (queue.schedules(), queue.audit_log(), snapshot(queue))
    values: dict[str, object] = {"name": "new", "cron": "* * * * *", "data": "x",
                                 "actor": "ops", **options}  # fmt: skip
    name, cron = values.pop("name"), values.pop("cron")
    with pytest.raises(InvalidArgument, match=words.replace("(", r"\(")) as raised:
        queue.add_schedule(name, cron, **values)  # type: ignore[arg-type]
    assert "\n" not in str(raised.value)
    assert (queue.schedules(), queue.audit_log(), snapshot(queue)) == before
    assert queue.schedule("taken") == existing


def test_bad_grace_is_refused(queue: Queue) -> None:
    for grace in (0, -5, float("nan"), 10_000):
        with pytest.raises(InvalidArgument, match="misfire_grace_seconds"):
            queue.enqueue_due_ticks(actor="manager", misfire_grace_seconds=grace)


def test_a_refused_tick_job_holds_up_no_other_schedule(
    make_queue: QueueMaker, clock: FakeClock
) -> None:
    roomy = make_queue(clock=clock)
    roomy.add_schedule("big", "* * * * *", data="x" * 500, actor="ops")
    every_minute(roomy, "small")
    strict = make_queue(clock=clock, max_payload_bytes=100)  # the limit was lowered since
    clock.advance(MINUTE)
    results = {r.schedule: r for r in strict.tick_schedules(actor="manager")}
    assert results["big"].jobs == [] and "payload is 500 bytes" in (results["big"].error or "")
    assert len(results["small"].jobs) == 1
    assert strict.schedule("big").last_tick_at is None  # its tick stays due
    with pytest.raises(InvalidArgument, match="schedule 'big'"):
        strict.enqueue_due_ticks(actor="manager")
    assert len(roomy.enqueue_due_ticks(actor="manager")) == 1  # where it fits, it goes
    assert roomy.doctor() == []


def test_ticks_follow_the_schedules_timezone(queue: Queue, clock: FakeClock) -> None:
    # 1_800_000_000 is 09:00 in Berlin (CET, UTC+1): a daily 10:00 Berlin tick is due at
    # 09:00 UTC, and in New York (UTC-5) 10:00 is 15:00 UTC.
    queue.add_schedule("berlin", "0 10 * * *", data="b", timezone="Europe/Berlin", actor="ops")
    queue.add_schedule("ny", "0 10 * * *", data="n", timezone="America/New_York", actor="ops")
    assert queue.schedule("berlin").next_run_at == 1_800_000_000 + 3600
    assert queue.schedule("ny").next_run_at == 1_800_000_000 + 7 * 3600
    clock.advance(3600)
    assert tick_keys(queue.enqueue_due_ticks(actor="manager")) == [
        key("berlin", 1_800_000_000 + 3600)
    ]
