"""Consumer metrics (docs/metrics.md)."""

from __future__ import annotations

from typing import TypeVar

from prometheus_client import Counter, Gauge, Histogram

Metric = TypeVar("Metric", Counter, Histogram)

JOBS_CLAIMED = Counter("pq_jobs_claimed_total", "jobs claimed", ["queue"])
JOBS_COMPLETED = Counter("pq_jobs_completed_total", "jobs completed (done)", ["queue"])
JOBS_FAILED = Counter("pq_jobs_failed_total", "jobs reported failed", ["queue", "retryable"])
JOBS_RELEASED = Counter("pq_jobs_released_total", "jobs given back (shutdown)", ["queue"])
JOBS_CANCELLED = Counter(
    "pq_jobs_cancelled_total", "jobs an operator cancelled while this consumer ran them", ["queue"]
)
LEASE_LOST = Counter("pq_lease_lost_total", "outcomes rejected because the lease was gone")
IMMEDIATE_RETRIES = Counter(
    "pq_handler_immediate_retries_total", "in-process retries of transient errors"
)
PROCESSING_SECONDS = Histogram(
    "pq_job_processing_seconds",
    "handler time per job",
    ["queue"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 7.5, 10, 15, 20, 30, 60, 120, 300),
)
BUSY = Gauge("pq_consumer_busy", "1 while a job is being processed, else 0")
LAST_HEARTBEAT = Gauge(
    "pq_consumer_last_heartbeat_timestamp_seconds", "time of the last successful heartbeat"
)


_children: dict[tuple[int, tuple[str, ...]], object] = {}


def child(metric: Metric, *labels: str) -> Metric:
    """``metric.labels(*labels)``, kept: the library checks and joins the labels on every
    call, which cost a consumer at zero work time a few per cent of its CPU."""
    key = (id(metric), labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found  # type: ignore[return-value]
