"""Consumer metrics (docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
