"""Claim+complete throughput on PostgreSQL (and SQLite, measured the same way).

    .venv/bin/python -m bench.pg_throughput [--jobs 5000] [--consumers 1,4]
                                            [--backends postgresql,sqlite] [--url URL]

Each run starts from an empty queue holding ``--jobs`` jobs; N consumer processes start
together and each loops ``claim(limit=1)`` + ``complete`` until the queue is empty.
Throughput is jobs / (last consumer done - first consumer started). Afterwards every job
must be done exactly once (``doctor`` clean), or the run is reported as failed.
PostgreSQL runs on a throwaway cluster in a temp dir (tests/pg.py), unless ``--url``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pqcore import open_queue

BATCH = 1000


def consume(url: str, name: str, start: Any) -> tuple[int, float, float]:
    """One consumer process: (jobs completed, start time, end time)."""
    with open_queue(url) as queue:
        start.wait()
        began = time.perf_counter()
        done = 0
        while True:
            claimed = queue.claim(name, limit=1)
            if not claimed:
                return done, began, time.perf_counter()
            job = claimed[0]
            queue.complete(job.id, job.lease_token or "")
            done += 1


def run(url: str, jobs: int, consumers: int) -> float:
    with open_queue(url) as queue:
        for first in range(0, jobs, BATCH):
            queue.enqueue_many(f"jobs/{i}.txt" for i in range(first, min(first + BATCH, jobs)))
    context = multiprocessing.get_context("spawn")
    start = context.Manager().Event()
    with context.Pool(consumers) as pool:
        pending = pool.starmap_async(
            consume, [(url, f"bench-{n}", start) for n in range(consumers)]
        )
        time.sleep(1.0)  # let every process import pqcore and connect before the gun
        start.set()
        results = pending.get(timeout=900)
    completed = sum(r[0] for r in results)
    elapsed = max(r[2] for r in results) - min(r[1] for r in results)
    with open_queue(url) as queue:
        problems = queue.doctor()
        done = queue.stats().counts["done"]
    if problems or completed != jobs or done != jobs:
        raise SystemExit(f"run broke the promise: completed={completed} done={done} {problems}")
    return jobs / elapsed


@contextmanager
def postgres_databases(url: str | None) -> Iterator[Any]:
    if url:
        yield lambda: url
        return
    from tests.pg import PostgresCluster, find_binaries

    bin_dir = find_binaries()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
    cluster = PostgresCluster(bin_dir).start()
    try:
        yield lambda: cluster.url(cluster.create_database("bench"))
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--consumers", default="1,4", help="comma-separated process counts")
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--url", default=None, help="an existing, empty PostgreSQL database")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.consumers.split(",")]
    backends = args.backends.split(",")
    print(f"claim(limit=1)+complete, {args.jobs} jobs per run")
    with postgres_databases(args.url) as new_database, tempfile.TemporaryDirectory() as tmp:
        for backend in backends:
            for n in counts:
                if backend == "postgresql":
                    url = new_database()
                else:
                    url = str(Path(tmp) / f"bench-{n}.db")
                rate = run(url, args.jobs, n)
                print(f"  {backend:<10} {n} consumer process(es): {rate:8.0f} jobs/s", flush=True)
                if args.url and backend == "postgresql" and n != counts[-1]:
                    raise SystemExit("--url holds one database: pass one --consumers count")
    return 0


if __name__ == "__main__":
    sys.exit(main())
