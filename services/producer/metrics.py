"""Producer metrics (docs/metrics.md)."""

from __future__ import annotations

from prometheus_client import Counter

JOBS_ENQUEUED = Counter(
    "pq_jobs_enqueued_total", "jobs this producer enqueued (dedupe hits excluded)", ["queue"]
)
FILES_WRITTEN = Counter("pq_producer_files_written_total", "job files written")
RECONCILED = Counter("pq_producer_reconciled_total", "orphan job files found and enqueued at start")
