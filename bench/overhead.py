"""What plain users pay: per-call enqueue, a Worker drain and claim+complete, measured
the same way before and after a change to the core (the tasks and dependencies work
must cost nothing to users who use neither).

    .venv/bin/python -m bench.overhead [--repeat 5] [--postgresql]

Single process, SQLite at synchronous=FULL and NORMAL (NORMAL shows the CPU cost that
FULL's fsync hides); ``--postgresql`` adds a throwaway cluster (tests/pg.py). Prints the
median of ``--repeat`` runs of each workload, in operations per second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable

from pqcore import EnqueueRequest, Queue, QueueSettings, open_queue
from pqcore.worker import Worker

ENQUEUES = 1500
DRAIN = 20_000
CLAIMS = 3000


def enqueue_one_by_one(queue: Queue) -> float:
    started = time.perf_counter()
    for i in range(ENQUEUES):
        queue.enqueue(f"jobs/{i}")
    return ENQUEUES / (time.perf_counter() - started)


def fill(queue: Queue, n: int) -> None:
    for start in range(0, n, 1000):
        queue.enqueue_many(EnqueueRequest(f"jobs/{start + i}") for i in range(min(1000, n - start)))


def worker_drain(queue: Queue) -> float:
    fill(queue, DRAIN)
    started = time.perf_counter()
    done = 0
    with Worker(queue, "bench-worker", batch=32) as worker:
        while (job := worker.next(timeout=0)) is not None:
            worker.done(job)
            done += 1
    elapsed = time.perf_counter() - started
    assert done == DRAIN, done
    return DRAIN / elapsed


def claim_complete(queue: Queue) -> float:
    fill(queue, CLAIMS)
    started = time.perf_counter()
    while claimed := queue.claim("bench", limit=1):
        queue.complete(claimed[0].id, claimed[0].lease_token or "")
    return CLAIMS / (time.perf_counter() - started)


WORKLOADS: dict[str, Callable[[Queue], float]] = {
    "enqueue (one per call)": enqueue_one_by_one,
    "Worker drain (batch 32)": worker_drain,
    "claim + complete": claim_complete,
}


def sqlite_queue(folder: str, synchronous: str) -> Queue:
    path = os.path.join(folder, f"q-{time.monotonic_ns()}.db")
    return open_queue(path, settings=QueueSettings(db=path, sqlite_synchronous=synchronous))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgresql", action="store_true")
    args = parser.parse_args()
    targets: list[tuple[str, Callable[[], Queue]]] = []
    folder = tempfile.mkdtemp(prefix="pq-overhead-")
    for sync in ("FULL", "NORMAL"):
        targets.append((f"sqlite {sync}", lambda s=sync: sqlite_queue(folder, s)))  # type: ignore[misc]
    if args.postgresql:
        from tests.pg import cluster

        pg = cluster()

        def pg_queue() -> Queue:
            url = pg.url(pg.create_database("overhead"))
            return open_queue(url, settings=QueueSettings(db=url))

        targets.append(("postgresql", pg_queue))
    for label, make in targets:
        for name, workload in WORKLOADS.items():
            rates = []
            for _ in range(args.repeat):
                with make() as queue:
                    rates.append(workload(queue))
            print(f"{label:<12} {name:<26} {statistics.median(rates):>10,.0f}/s"
                  f"  (runs: {', '.join(f'{r:,.0f}' for r in rates)})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
