"""Chaos 5: flow control and periodic jobs while consumers and managers are SIGKILLed.

One run of about a minute, with real processes: two managers and five consumers taking
jobs from three queues, one of them SIGKILLed (and restarted, as supervisor would) every
fraction of a second, now and then a manager too. From the history afterwards:

(a) queue ``limited`` (a global concurrency limit of ``CONCURRENCY``) never had more
    jobs processing at once. A job is processing from its claim to its next event (the
    completion, or the rescue of a killed consumer's job); the timeline is the history's
    event order, in which a claim that saw a completion comes after it;
(b) the per-second schedule ``beat`` enqueued exactly one job per tick: every second
    from its first tick to its last has one job, no dedupe key twice, nothing skipped;
(c) queue ``rated`` (a rate limit of ``RATE`` claims per second) never had more claims
    in any sliding window (t - 1 s, t] of the claim events' times.

The measured maxima are printed for the closing note.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter, defaultdict

import pytest

from pqcore import EnqueueRequest, JobEvent, JobFilter, JobState, Queue
from tests.services.system import Proc, System

RUN_SECONDS = 60.0
CONSUMERS = 5
CONCURRENCY = 3
RATE = 5
CONSUMER_ARGS = ("--work-min", 0.02, "--work-max", 0.2, "--lease", 2, "--grace", 1,
                 "--batch", 4)  # fmt: skip
MANAGER_ARGS = ("--rescue-interval", 0.5, "--check-interval", 1, "--leader-ttl", 2,
                "--consumer-timeout", 5, "--schedule-interval", 0.2)  # fmt: skip


def all_events(queue: Queue) -> list[JobEvent]:
    events: list[JobEvent] = []
    while page := queue.events_after(events[-1].id if events else 0, limit=1000):
        events += page
    return events


def job_queues(queue: Queue) -> dict[int, str]:
    found: dict[int, str] = {}
    before = None
    while True:
        page = queue.list_jobs(JobFilter(), limit=1000, before_id=before)
        found.update({job.id: job.queue for job in page.jobs})
        if page.next_cursor is None:
            return found
        before = page.next_cursor


def max_concurrent(events: list[JobEvent], jobs: set[int]) -> tuple[int, int]:
    """The most of ``jobs`` processing at once, and how many claims there were. Each
    claim holds its job until the job's next event (or the end of the run)."""
    delta: dict[int, int] = defaultdict(int)  # event id -> change in running jobs
    open_since: dict[int, int] = {}
    claims = 0
    for event in events:  # in id order
        if event.job_id not in jobs:
            continue
        if event.job_id in open_since:  # whatever follows a claim ends it
            delta[event.id] -= 1
            del open_since[event.job_id]
        if event.to_status is JobState.PROCESSING:
            claims += 1
            delta[event.id] += 1
            open_since[event.job_id] = event.id
    running = peak = 0
    for event_id in sorted(delta):
        running += delta[event_id]
        peak = max(peak, running)
    return peak, claims


def max_per_window(times: list[float], window: float = 1.0) -> int:
    """The most claims in any window (t - window, t]."""
    times = sorted(times)
    peak = start = 0
    for end, at in enumerate(times):
        while times[start] <= at - window:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


@pytest.mark.slow
def test_limits_and_schedules_hold_while_processes_are_killed(system: System) -> None:
    queue = system.queue
    for name in ("limited.txt", "rated.txt", "beat.txt"):
        system.write_job_file(name)
    queue.set_limits("limited", actor="chaos", concurrency=CONCURRENCY)
    queue.set_limits("rated", actor="chaos", rate=RATE, rate_period=1.0)
    # More work than the limits let through in the run: both stay saturated throughout.
    queue.enqueue_many([EnqueueRequest("limited.txt", "limited") for _ in range(1500)])
    queue.enqueue_many([EnqueueRequest("rated.txt", "rated") for _ in range(600)])
    queue.add_schedule("beat", "* * * * * *", data="beat.txt", queue="cron", actor="chaos")

    rng = random.Random(5)
    managers: list[Proc] = [system.start("manager", *MANAGER_ARGS) for _ in range(2)]
    consumers: list[Proc] = [system.start("consumer", *CONSUMER_ARGS) for _ in range(CONSUMERS)]
    consumer_kills = manager_kills = 0
    end = time.monotonic() + RUN_SECONDS
    while time.monotonic() < end:
        time.sleep(rng.uniform(0.2, 1.0))
        victim = rng.randrange(CONSUMERS)
        consumers[victim].signal(signal.SIGKILL)
        consumers[victim].wait(10)
        consumers[victim] = system.start("consumer", *CONSUMER_ARGS)
        consumer_kills += 1
        if rng.random() < 0.15:
            which = rng.randrange(len(managers))
            managers[which].signal(signal.SIGKILL)
            managers[which].wait(10)
            managers[which] = system.start("manager", *MANAGER_ARGS)
            manager_kills += 1
    system.stop_all(signal.SIGKILL)  # mid-flight: open claims count until the end

    events = all_events(queue)
    by_queue: dict[str, set[int]] = defaultdict(set)
    for job_id, name in job_queues(queue).items():
        by_queue[name].add(job_id)

    # (a) the concurrency limit
    peak, limited_claims = max_concurrent(events, by_queue["limited"])

    # (b) one job per tick of the per-second schedule
    beats = [j for j in queue.list_jobs(JobFilter(queue="cron"), limit=1000).jobs]
    keys = Counter(j.dedupe_key for j in beats)
    ticks = sorted(int((k or "").rsplit(":", 1)[1]) for k in keys)
    missing = sorted(set(range(ticks[0], ticks[-1] + 1)) - set(ticks)) if ticks else []
    doubled = {k: n for k, n in keys.items() if n > 1}
    schedule = queue.schedule("beat")

    # (c) the rate limit
    claim_times = [e.at for e in events if e.job_id in by_queue["rated"] and e.action == "claim"]
    rate_peak = max_per_window(claim_times)
    # The same measures on the queues without that limit, to show they can exceed it.
    unlimited_peak, _ = max_concurrent(events, by_queue["rated"] | by_queue["cron"])
    unlimited_rate = max_per_window(
        [e.at for e in events if e.job_id in by_queue["limited"] and e.action == "claim"]
    )

    print(
        f"\nCHAOS flow-control [{system.backend.name}]: run={RUN_SECONDS:.0f}s "
        f"consumer_kills={consumer_kills} manager_kills={manager_kills} | "
        f"concurrency limit {CONCURRENCY}: max processing at once={peak} "
        f"(claims={limited_claims}) | rate limit {RATE}/s: max claims in any 1 s window="
        f"{rate_peak} (claims={len(claim_times)}) | schedule every 1 s: ticks={len(ticks)} "
        f"({ticks[0] if ticks else '-'}..{ticks[-1] if ticks else '-'}) missing={len(missing)} "
        f"doubled={len(doubled)} skipped={schedule.ticks_skipped} | without the limit: "
        f"max processing at once={unlimited_peak}, max claims in 1 s={unlimited_rate}"
    )
    assert consumer_kills > 20 and manager_kills > 0
    assert peak <= CONCURRENCY
    assert limited_claims > 100 and peak >= 2  # the limit was actually under pressure
    assert rate_peak <= RATE
    assert len(claim_times) >= RATE * RUN_SECONDS / 2
    assert doubled == {} and missing == []
    assert len(ticks) >= RUN_SECONDS - 10  # a tick every second for (nearly) the whole run
    assert schedule.ticks_skipped == 0 and schedule.ticks_enqueued == len(ticks)
    assert queue.doctor() == []
