"""Notification metrics (docs/metrics.md), exported by whichever role runs the notifier."""

from __future__ import annotations

from prometheus_client import Counter

SENT = Counter("pq_notifications_sent_total", "messages a channel accepted", ["channel", "kind"])
FAILED = Counter(
    "pq_notifications_failed_total",
    "messages given up on a channel after every retry failed",
    ["channel", "kind"],
)
DROPPED = Counter(
    "pq_notifications_dropped_total",
    "messages never attempted (queue full, or unsent when the shutdown deadline passed)",
    ["reason"],
)
SUPPRESSED = Counter(
    "pq_notifications_suppressed_total",
    "events folded into a digest or dropped as duplicates by storm control",
    ["kind", "reason"],
)
