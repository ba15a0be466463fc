"""Manager metrics (docs/metrics.md): its own counters, and the queue read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from loguru import logger
from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from pqcore import Consumer, ConsumerState, PQError, Queue, QueueControl, Stats
from services.common.claims import ClaimWatch

IS_LEADER = Gauge("pq_manager_is_leader", "1 while this manager holds the leadership lease")
CYCLES = Counter("pq_manager_cycles_total", "maintenance cycles run as leader")
CYCLE_SECONDS = Histogram(
    "pq_manager_cycle_seconds",
    "duration of a maintenance cycle",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
)
STALLED_RECOVERED = Counter(
    "pq_stalled_jobs_recovered_total", "processing jobs taken back", ["reason"]
)
JOBS_RETRIED = Counter(
    "pq_jobs_retried_total", "failed jobs moved back to pending after their backoff"
)
DEAD_LETTERED = Counter(
    "pq_jobs_dead_lettered_total", "jobs the manager moved to permanently_failed"
)
CONSUMERS_MARKED_DEAD = Counter("pq_consumers_marked_dead_total", "consumers declared dead")
JOBS_PURGED = Counter("pq_jobs_purged_total", "done jobs deleted by retention")

CONSUMER_STATES = tuple(state.value for state in ConsumerState)
SCRAPE_TIMEOUT = 10.0


class QueueCollector(Collector):
    """Reads the database when Prometheus scrapes: depth per status, oldest pending age,
    dead-letter size, stalled jobs, consumers per state and the seconds since the last
    claim. A database error leaves these series out of that scrape (and is logged)
    rather than failing the endpoint."""

    def __init__(self, open_queue: Callable[[], Queue], claims: ClaimWatch | None = None) -> None:
        self._open = open_queue
        self._queue: Queue | None = None
        self._claims = claims or ClaimWatch()
        # The HTTP server answers each scrape on a new thread; reading on one worker
        # thread keeps it to one database connection for the life of the process.
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scrape")

    def _read(self) -> tuple[Stats, list[Consumer], float, dict[str, QueueControl]]:
        if self._queue is None:
            self._queue = self._open()
        queue = self._queue
        since_claim = self._claims.seconds_since_claim(queue)
        return queue.stats(), queue.consumers(), since_claim, queue.controls()

    def describe(self) -> Iterator[Metric]:
        yield from self._families(None, [], 0.0, {})

    def collect(self) -> Iterator[Metric]:
        try:
            read = self._reader.submit(self._read).result(timeout=SCRAPE_TIMEOUT)
        except (PQError, TimeoutError) as error:
            logger.warning("metrics scrape could not read the queue: {}", error or "timeout")
            return
        yield from self._families(*read)

    def _families(
        self,
        stats: Stats | None,
        consumers: list[Consumer],
        since_claim: float,
        controls: dict[str, QueueControl],
    ) -> Iterator[Metric]:
        if stats is None:  # describe(): names only, no database access at registration
            stats = Stats(counts={}, oldest_pending_age=None, stalled=0, dead_letter=0, total=0)
        jobs = GaugeMetricFamily("pq_queue_jobs", "jobs per status", labels=["status"])
        for status, n in stats.counts.items():
            jobs.add_metric([status], n)
        yield jobs
        yield GaugeMetricFamily(
            "pq_oldest_pending_age_seconds",
            "how long the oldest runnable pending job has waited (0 if none)",
            value=stats.oldest_pending_age or 0.0,
        )
        yield GaugeMetricFamily(
            "pq_dead_letter_jobs", "jobs in permanently_failed", value=stats.dead_letter
        )
        yield GaugeMetricFamily(
            "pq_stalled_jobs", "processing jobs whose lease expired", value=stats.stalled
        )
        per_state = GaugeMetricFamily(
            "pq_consumers", "registered consumers per state", labels=["state"]
        )
        counts = dict.fromkeys(CONSUMER_STATES, 0)
        for consumer in consumers:
            counts[consumer.state] = counts.get(consumer.state, 0) + 1
        for state, n in counts.items():
            per_state.add_metric([state], n)
        yield per_state
        # With pq_oldest_pending_age_seconds: runnable jobs waiting while nobody claims
        # (alert PQJobsPendingNothingClaimed, services/common/claims.py).
        yield GaugeMetricFamily(
            "pq_last_claim_age_seconds",
            "seconds since the newest claim in the queue's history (at least; counted from"
            " the oldest history this manager read when none was seen)",
            value=since_claim,
        )
        paused = GaugeMetricFamily(
            "pq_queue_paused",
            "1 while the queue is paused (queues with controls)",
            labels=["queue"],
        )
        limits = GaugeMetricFamily(
            "pq_queue_limit",
            "a queue's limit: jobs processing at once (concurrency), claims per period (rate)",
            labels=["queue", "limit"],
        )
        for name, control in sorted(controls.items()):
            paused.add_metric([name], 1 if control.paused else 0)
            for limit, value in control.limits().items():
                if value is not None:
                    limits.add_metric([name, limit], float(value))
        yield paused
        yield limits


def register_queue_collector(open_queue: Callable[[], Queue]) -> QueueCollector:
    collector = QueueCollector(open_queue)
    REGISTRY.register(collector)
    return collector
