"""Helpers for tests and benchmarks of code that uses pq; not part of the queue's API."""

from __future__ import annotations

from typing import Any

from pqcore.driver import Session
from pqcore.models import EnqueueRequest
from pqcore.queue import Queue
from pqcore.validation import check_limit, enqueue_values

SEED_CHUNK = 100_000


def seed_finished_jobs(
    queue: Queue, count: int, *, queue_name: str = "default", data: str = "seed",
    actor: str = "seed",
) -> int:  # fmt: skip
    """Write ``count`` jobs that are already done, each with the history a real run
    leaves (enqueue, claim, complete by ``actor``), set-wise in chunks of 100,000, so
    a big table (the cost of claim and stats must not grow with it) takes seconds.
    Returns how many were written."""
    check_limit(count, 100_000_000)
    enqueue_values(EnqueueRequest(data, queue_name), queue.settings)
    written = 0
    while written < count:
        chunk = min(SEED_CHUNK, count - written)
        params = {
            "count": chunk, "queue": queue_name, "data": data, "actor": actor,
            "now": queue.clock() if queue.clock else queue.driver.now(),
            "max_attempts": queue.settings.max_attempts,
        }  # fmt: skip

        def body(session: Session, params: dict[str, Any] = params) -> None:
            last = session.one("jobs_last_id")
            after = {**params, "after": int(last["id"]) if last else 0}
            session.run("seed_pending_jobs", params)
            session.run("seed_claim_after", after)
            session.run("seed_complete_after", after)

        queue.driver.write(body)
        written += chunk
    return written
