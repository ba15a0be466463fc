"""The manager enqueues periodic jobs: a real manager process on a per-second schedule,
its metrics and log lines; and, in-process on a fake clock, what it reports when ticks
were missed."""

from __future__ import annotations

import re

from loguru import logger
from prometheus_client import REGISTRY

from pqcore import Job
from services.manager.manager import Manager, ManagerSettings
from tests.backends import BackendHandle, FakeClock
from tests.services.system import System
from tests.services.test_manager import FAST, scrape
from tests.support import free_port, wait_for


def tick_jobs(system: System, name: str) -> list[Job]:
    jobs = system.queue.list_jobs(limit=1000).jobs
    return sorted((j for j in jobs if (j.dedupe_key or "").startswith(f"schedule:{name}:")),
                  key=lambda j: j.id)  # fmt: skip


def test_a_manager_process_enqueues_every_tick_once_and_exports_them(system: System) -> None:
    system.queue.add_schedule("beat", "* * * * * *", data="beat", queue="cron", actor="test")
    port = free_port()
    manager = system.start("manager", *FAST, "--schedule-interval", 0.2, "--metrics-port", port)
    wait_for(lambda: len(tick_jobs(system, "beat")) >= 4, 30, "four ticks enqueued")
    jobs = tick_jobs(system, "beat")
    ticks = [int((j.dedupe_key or "").rsplit(":", 1)[1]) for j in jobs]
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))  # each second, once, in order
    assert all(j.run_at == t and j.queue == "cron" for j, t in zip(jobs, ticks, strict=True))
    text = scrape(port)
    enqueued = re.search(r'pq_schedule_ticks_total\{outcome="enqueued",schedule="beat"\} (\S+)',
                         text)  # fmt: skip
    assert enqueued and float(enqueued.group(1)) >= 4
    last = re.search(r'pq_schedule_last_tick_timestamp_seconds\{schedule="beat"\} (\S+)', text)
    assert last and float(last.group(1)) >= ticks[-1]
    assert re.search(rf"schedule=beat tick={ticks[0]} enqueued job={jobs[0].id} queue=cron",
                     manager.text())  # fmt: skip


def test_the_manager_counts_and_logs_skipped_ticks(backend: BackendHandle) -> None:
    clock = FakeClock()
    queue = backend.make(clock=clock)
    queue.add_schedule("hourly-report", "0 * * * *", data="r", actor="test")
    manager = Manager(queue, ManagerSettings(misfire_grace=120), manager_id="m1")
    lines: list[str] = []
    sink = logger.add(lines.append, format="{level} {message}")
    labels = {"schedule": "hourly-report"}

    def count(outcome: str) -> float:
        return (
            REGISTRY.get_sample_value("pq_schedule_ticks_total", {**labels, "outcome": outcome})
            or 0.0
        )

    before = count("enqueued"), count("skipped")
    try:
        clock.advance(5 * 3600 + 100)  # no manager for five hours: 5 ticks, the newest late
        manager.enqueue_due_ticks()  # by 100 s, inside the 120 s grace
    finally:
        logger.remove(sink)
    assert (count("enqueued") - before[0], count("skipped") - before[1]) == (1, 4)
    assert any(line.startswith("WARNING schedule=hourly-report skipped 4 missed tick(s)")
               for line in lines), lines  # fmt: skip
    assert any("schedule=hourly-report tick=" in line and "enqueued job=" in line for line in lines)
    assert queue.schedule("hourly-report").ticks_skipped == 4
