"""``make bench``: pq and its peers measured in the same run (issues 7 and 15).

    .venv/bin/python -m bench            # full run (see bench/results for how long)
    .venv/bin/python -m bench --quick    # smaller counts, for a smoke test

Every workload runs in ROUNDS rounds, every system once per round in a rotating order;
each timed run handles ``--full-jobs`` (FULL) or ``--jobs`` (NORMAL) jobs. Cells print the
median round with its min and max; ratios are taken round by round (pq and the peer ran in
the same round) and their median printed. Prints the tables and writes
``bench/results/<date>.md`` and ``<date>.png`` (``<date>-2.*`` for a second run that day).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import endtoend, report, visibility, workloads
from bench.systems import QUEUES

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SYNCS = ("FULL", "NORMAL")
ROUNDS = 3
# Systems drained in workload 2: pq-call is pq without the Worker (claim(limit=1) +
# complete per call); the peers have only one-at-a-time get+ack, so their drain *is*
# their per-call figure, measured in the same rounds.
DRAIN1 = ["pq", "pq-call", "huey", "persist-queue", "litequeue", "raw-floor"]
LIGHT = ["pq", "pq-poll", "huey", "persist-queue", "litequeue", "raw-floor"]
E2E = ["svc x1", "svc x2", "svc x4", "pq"]
# litequeue drains 350-700 jobs/s at NORMAL: 20,000 jobs would take 30-60 s a run, six
# runs a bench. A time cap still times thousands of its jobs; the cell says so.
PEER_SECONDS = 15.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (smoke test)")
    parser.add_argument(
        "--jobs", type=int, default=20_000, help="jobs per timed run at synchronous=NORMAL"
    )
    parser.add_argument(
        "--full-jobs",
        type=int,
        default=5_000,
        help="jobs per timed run at synchronous=FULL (peers commit per job: slower)",
    )
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument(
        "--peer-seconds",
        type=float,
        default=PEER_SECONDS,
        help="a peer's drain stops after this long (pq always drains every job)",
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
        "rounds": args.rounds,
        "cells": {},
        "errors": [],
    }
    try:
        for sync in SYNCS:
            run_sync(
                results, work, sync, results["jobs"][sync], args.scale_jobs, args.quick,
                args.rounds, args.peer_seconds,
            )  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["seconds"] = time.monotonic() - started
    text = report.render(results)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = report.results_stem(args.out)
    markdown = args.out / f"{stamp}.md"
    chart = args.out / f"{stamp}.png"
    report.chart(results, chart)
    markdown.write_text(report.markdown(results, text, chart.name), encoding="utf-8")
    print(f"\nwritten: {markdown}, {chart}")
    print(f"total time {results['seconds']:.0f} s")
    return 0


def run_sync(
    results: dict[str, Any],
    work: Path,
    sync: str,
    n: int,
    scale_jobs: int,
    quick: bool,
    rounds_wanted: int = ROUNDS,
    peer_seconds: float = PEER_SECONDS,
) -> None:
    """Each workload in rounds, every system once per round in a rotating order, so a slow
    spell of the shared disk hits every system alike."""
    cells = results["cells"]

    def measure(workload: str, systems: list[str], run: Any, rounds: int = rounds_wanted) -> None:
        done: dict[str, list[workloads.Result]] = {s: [] for s in systems}
        t = time.monotonic()
        for k in range(rounds):
            for system in systems[k % len(systems) :] + systems[: k % len(systems)]:
                try:
                    done[system].append(run(system))
                except Exception as error:  # a peer failing a workload is a result
                    line = (str(error).strip().splitlines() or [type(error).__name__])[0]
                    message = f"{workload} {system} {sync}: {line[:200]}"
                    results["errors"].append(message)
                    done[system].append(workloads.Result(note="failed: " + message))
        for system, got in done.items():
            cells[(workload, system, sync)] = workloads.Result.combine(got)
        print(
            f"  {workload:<14} {sync:<6} {time.monotonic() - t:6.1f} s", file=sys.stderr, flush=True
        )

    print(f"synchronous={sync}, {n} jobs per timed run", file=sys.stderr, flush=True)
    t = time.monotonic()
    one_call = [*QUEUES, "one-commit"]
    per_round: dict[str, list[workloads.Result]] = {s: [] for s in one_call}
    for k in range(rounds_wanted):
        order = one_call[k % len(one_call) :] + one_call[: k % len(one_call)]
        try:
            for system, result in workloads.enqueue_interleaved(order, work, sync, n).items():
                per_round[system].append(result)
        except Exception as error:
            message = f"enqueue {sync}: {str(error)[:200]}"
            results["errors"].append(message)
            for system in one_call:
                per_round[system].append(workloads.Result(note="failed: " + message))
    for system, got in per_round.items():
        cells[("enqueue", system, sync)] = workloads.Result.combine(got)
    print(f"  enqueue        {sync:<6} {time.monotonic() - t:6.1f} s", file=sys.stderr)
    measure(
        "enqueue_batch", ["pq", "raw-floor"], lambda s: workloads.enqueue_batch(s, work, sync, n)
    )

    def drain(system: str, consumers: int) -> workloads.Result:
        cap = None if system.startswith("pq") else peer_seconds
        return workloads.drain(system, work, sync, n, consumers, cap)

    measure("drain1", DRAIN1, lambda s: drain(s, 1))
    measure("drain4", QUEUES, lambda s: drain(s, 4))
    measure("mixed", QUEUES, lambda s: workloads.mixed(s, work, sync, n))
    idle, load = (0.5, 1.0) if quick else (1.0, 2.0)
    if sync == "FULL":  # wake-up path, idle CPU: NORMAL measured within 0.4 ms
        measure("light", LIGHT, lambda s: workloads.light_load(s, work, sync, 200.0, load, idle))

    # Workload 7: the real services against the Worker drain with 4 processes, same rounds.
    def e2e(system: str) -> workloads.Result:
        if system == "pq":
            return workloads.drain("pq", work, sync, n, 4)
        return endtoend.end_to_end(work, sync, n, int(system.removeprefix("svc x")))

    measure("endtoend", E2E, e2e)

    # The Worker's outcome-visibility delay: a drain flat out, and light load (200/s).
    def outcome_delay(shape: str) -> workloads.Result:
        db = str(workloads.fresh_dir(work, f"vis-{shape}") / "pq.db")
        if shape == "burst":
            return visibility.measure(db, sync, n)
        return visibility.measure(db, sync, int(200 * load), rate=200.0)

    measure("visibility", ["burst", "paced"], outcome_delay)
    for size in (1_000, scale_jobs):
        t = time.monotonic()
        cells[(f"scale{size}", "pq", sync)] = workloads.scale(work, sync, size)
        print(f"  scale {size:<8} {sync:<6} {time.monotonic() - t:6.1f} s", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
