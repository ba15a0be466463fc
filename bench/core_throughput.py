"""Claim+complete throughput of pqcore on SQLite, with 1 and 4 consumer processes.

    .venv/bin/python -m bench.core_throughput [--jobs 10000] [--processes 1 4]
                                              [--synchronous FULL NORMAL]

Each process loops ``claim(limit=1)`` + ``complete`` (two write transactions per job,
the slowest honest pattern) until the queue is empty. The clock starts when every
process has opened the queue and stops when the last one finds nothing left; the
result is checked (every job done once, ``doctor()`` clean) before it is printed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import sqlite3
import tempfile
import time
from multiprocessing.synchronize import Barrier

from pqcore import EnqueueRequest, QueueSettings, open_queue


def consume(
    path: str, synchronous: str, barrier: Barrier, name: str, results: mp.Queue[int]
) -> None:
    queue = open_queue(path, settings=QueueSettings(db=path, sqlite_synchronous=synchronous))
    barrier.wait(timeout=120)
    done = 0
    while claimed := queue.claim(name, limit=1):
        job = claimed[0]
        queue.complete(job.id, job.lease_token or "")
        done += 1
    queue.close()
    results.put(done)


def run(jobs: int, processes: int, synchronous: str) -> float:
    with tempfile.TemporaryDirectory(prefix="pq-bench-") as folder:
        path = os.path.join(folder, "queue.db")
        settings = QueueSettings(db=path, sqlite_synchronous=synchronous)
        with open_queue(path, settings=settings) as queue:
            for start in range(0, jobs, 1000):
                count = min(1000, jobs - start)
                queue.enqueue_many(EnqueueRequest(f"jobs/{start + i}") for i in range(count))
        context = mp.get_context("spawn")
        barrier = context.Barrier(processes + 1)
        results: mp.Queue[int] = context.Queue()
        workers = [
            context.Process(
                target=consume, args=(path, synchronous, barrier, f"bench-{n}", results)
            )
            for n in range(processes)
        ]
        for worker in workers:
            worker.start()
        try:
            barrier.wait(timeout=120)
            started = time.perf_counter()
            counts = [results.get(timeout=600) for _ in workers]
            elapsed = time.perf_counter() - started
        finally:
            for worker in workers:
                worker.join(timeout=10)
                if worker.is_alive():
                    worker.kill()
        with open_queue(path, settings=settings, create=False) as queue:
            stats = queue.stats()
            problems = queue.doctor()
        if sum(counts) != jobs or stats.counts["done"] != jobs or problems:
            raise SystemExit(f"bad run: counts={counts} stats={stats} problems={problems}")
        return jobs / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--synchronous", nargs="+", default=["FULL", "NORMAL"])
    args = parser.parse_args()
    print(
        f"pqcore claim+complete, SQLite {sqlite3.sqlite_version}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, {args.jobs} jobs per run"
    )
    for synchronous in args.synchronous:
        for processes in args.processes:
            rate = run(args.jobs, processes, synchronous.upper())
            print(
                f"synchronous={synchronous.upper():<6} processes={processes}  {rate:8.0f} jobs/s",
                flush=True,
            )


if __name__ == "__main__":
    main()
