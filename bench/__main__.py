"""``make bench``: every workload of issue 7, pq and its peers measured in the same run.

    .venv/bin/python -m bench            # full run (about 5-8 minutes on 2 cores)
    .venv/bin/python -m bench --quick    # smaller counts, for a smoke test

Prints the tables and writes ``bench/results/<date>.md`` and ``<date>.png``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import endtoend, report, workloads
from bench.systems import QUEUES

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SYNCS = ("FULL", "NORMAL")
ROUNDS = 5
LIGHT_ROUNDS = 3  # each light-load round lasts a few seconds whatever the disk does
PQ_MIN_DRAIN = 5_000  # jobs per drain round for pq (see run_sync)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (smoke test)")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per workload")
    parser.add_argument(
        "--full-jobs",
        type=int,
        default=1_500,
        help="jobs per workload at synchronous=FULL (peers commit per job: slower)",
    )
    parser.add_argument("--scale-jobs", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--work-dir", type=Path, default=ROOT / "var" / "bench")
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.full_jobs, args.scale_jobs = 2_000, 1_000, 20_000

    started = time.monotonic()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=args.work_dir))
    results: dict[str, Any] = {
        "jobs": {"FULL": args.full_jobs, "NORMAL": args.jobs},
        "scale_jobs": args.scale_jobs,
        "cells": {},
        "errors": [],
    }
    try:
        for sync in SYNCS:
            run_sync(results, work, sync, results["jobs"][sync], args.scale_jobs, args.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = time.monotonic() - started
    text = report.render(results)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    markdown = args.out / f"{stamp}.md"
    chart = args.out / f"{stamp}.png"
    report.chart(results, chart)
    markdown.write_text(report.markdown(results, text, chart.name), encoding="utf-8")
    print(f"\nwritten: {markdown}, {chart}")
    print(f"total time {results['seconds']:.0f} s")
    return 0


def run_sync(
    results: dict[str, Any], work: Path, sync: str, n: int, scale_jobs: int, quick: bool
) -> None:
    """Each throughput workload in ROUNDS rounds, every system once per round in a rotating order,
    so a slow spell of the shared disk hits every system alike; the median round counts."""
    cells = results["cells"]

    def measure(workload: str, systems: list[str], run: Any, rounds_wanted: int = ROUNDS) -> None:
        rounds: dict[str, list[workloads.Result]] = {s: [] for s in systems}
        t = time.monotonic()
        for k in range(rounds_wanted):
            for system in systems[k % len(systems) :] + systems[: k % len(systems)]:
                try:
                    rounds[system].append(run(system))
                except Exception as error:  # a peer failing a workload is a result
                    line = (str(error).strip().splitlines() or [type(error).__name__])[0]
                    message = f"{workload} {system} {sync}: {line[:200]}"
                    results["errors"].append(message)
                    rounds[system].append(workloads.Result(note="failed: " + message))
        for system, done in rounds.items():
            cells[(workload, system, sync)] = workloads.Result.combine(done)
        print(
            f"  {workload:<14} {sync:<6} {time.monotonic() - t:6.1f} s", file=sys.stderr, flush=True
        )

    per_round = max(1, n // ROUNDS)
    print(f"synchronous={sync}, {n} jobs per workload", file=sys.stderr, flush=True)
    t = time.monotonic()
    try:
        for system, result in workloads.enqueue_interleaved(
            [*QUEUES, "one-commit"], work, sync, n
        ).items():
            cells[("enqueue", system, sync)] = result
    except Exception as error:
        results["errors"].append(f"enqueue {sync}: {str(error)[:200]}")
    print(f"  enqueue        {sync:<6} {time.monotonic() - t:6.1f} s", file=sys.stderr)
    measure(
        "enqueue_batch", ["pq", "raw-floor"], lambda s: workloads.enqueue_batch(s, work, sync, n)
    )

    # pq drains a FULL-mode round in well under a second; give it enough jobs to time.
    def drain_jobs(system: str) -> int:
        return max(per_round, PQ_MIN_DRAIN) if system == "pq" else per_round

    measure("drain1", QUEUES, lambda s: workloads.drain(s, work, sync, drain_jobs(s), 1))
    measure("drain4", QUEUES, lambda s: workloads.drain(s, work, sync, drain_jobs(s), 4))
    measure("mixed", QUEUES, lambda s: workloads.mixed(s, work, sync, per_round))
    idle, load = (0.5, 1.0) if quick else (1.0, 2.0)
    measure(
        "light",
        ["pq", "pq-poll", "huey", "raw-floor"],
        lambda s: workloads.light_load(s, work, sync, 200.0, load, idle),
        LIGHT_ROUNDS,
    )
    e2e_jobs = 300 if quick else (1_000 if sync == "FULL" else 2_000)
    for k in (1, 2, 4):
        t = time.monotonic()
        key = ("endtoend", f"pq x{k}", sync)
        try:
            cells[key] = endtoend.end_to_end(work, sync, e2e_jobs, k)
        except Exception as error:
            message = f"endtoend {k} consumers {sync}: {str(error)[:200]}"
            results["errors"].append(message)
            cells[key] = workloads.Result(note="failed: " + message)
        print(f"  endtoend x{k}    {sync:<6} {time.monotonic() - t:6.1f} s", file=sys.stderr)
    results.setdefault("e2e_jobs", {})[sync] = e2e_jobs
    for size in (1_000, scale_jobs):
        t = time.monotonic()
        cells[(f"scale{size}", "pq", sync)] = workloads.scale(work, sync, size)
        print(f"  scale {size:<8} {sync:<6} {time.monotonic() - t:6.1f} s", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
