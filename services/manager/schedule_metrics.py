"""Periodic-job metrics of the manager (docs/metrics.md).

``pq_schedule_ticks_total{schedule,outcome}`` counts, in the leader that handled them,
the ticks enqueued and the missed ticks skipped by the catch-up policy.
``pq_schedule_last_tick_timestamp_seconds{schedule}`` is read from the database at
scrape time (the newest tick handled), so every manager, leader or standby, restarted
or not, reports the same value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from loguru import logger
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from pqcore import PQError, Queue, Schedule

SCHEDULE_TICKS = Counter(
    "pq_schedule_ticks_total",
    "ticks of periodic jobs handled by this manager: enqueued, or skipped (missed, catch-up)",
    ["schedule", "outcome"],
)
SCRAPE_TIMEOUT = 10.0


class ScheduleCollector(Collector):
    """The newest tick each schedule handled, read when Prometheus scrapes. A database
    error leaves the series out of that scrape (and is logged)."""

    def __init__(self, open_queue: Callable[[], Queue]) -> None:
        self._open = open_queue
        self._queue: Queue | None = None
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scrape-schedules")

    def _read(self) -> list[Schedule]:
        if self._queue is None:
            self._queue = self._open()
        return self._queue.schedules()

    def describe(self) -> Iterator[Metric]:
        yield self._family([])

    def collect(self) -> Iterator[Metric]:
        try:
            schedules = self._reader.submit(self._read).result(timeout=SCRAPE_TIMEOUT)
        except (PQError, TimeoutError) as error:
            logger.warning("metrics scrape could not read the schedules: {}", error or "timeout")
            return
        yield self._family(schedules)

    @staticmethod
    def _family(schedules: list[Schedule]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "pq_schedule_last_tick_timestamp_seconds",
            "scheduled time of the newest tick a schedule handled (enqueued or skipped)",
            labels=["schedule"],
        )
        for schedule in schedules:
            if schedule.last_tick_at is not None:
                family.add_metric([schedule.name], schedule.last_tick_at)
        return family


def register_schedule_collector(open_queue: Callable[[], Queue]) -> ScheduleCollector:
    collector = ScheduleCollector(open_queue)
    REGISTRY.register(collector)
    return collector
