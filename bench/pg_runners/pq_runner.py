"""pq's PostgreSQL backend through its public API (run with the project's Python):
``enqueue`` / ``enqueue_many``, consumed through the ``Worker`` at its defaults."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from pqcore import open_queue
from pqcore.worker import Worker

URL = sys.argv[1]


class PQ:
    def __init__(self) -> None:
        self.queue = open_queue(URL)

    def setup(self) -> None:
        self.queue.stats()  # open_queue created the schema

    def enqueue_one(self, payloads: list[str]) -> None:
        for p in payloads:
            self.queue.enqueue(p)

    def enqueue_batch(self, payloads: list[str]) -> None:
        self.queue.enqueue_many(payloads)

    def consume(self, on_job: Any, stop: Any) -> None:
        with Worker(self.queue, f"bench-{uuid.uuid4().hex[:8]}") as worker:
            while not stop.is_set():
                job = worker.next(timeout=0.05)
                if job is not None:
                    on_job(job.data)
                    worker.done(job)

    def held(self) -> int:
        return int(self.queue.stats().total)


if __name__ == "__main__":
    sys.exit(harness.main(PQ, sys.argv[2:]))
