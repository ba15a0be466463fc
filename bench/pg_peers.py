"""``make bench-pg``: pq's PostgreSQL backend against its PostgreSQL peers, in the same run.

    .venv/bin/python -m bench.pg_peers            # 3,000 jobs per run (mixed 1,500), 3 rounds
    .venv/bin/python -m bench.pg_peers --quick    # smoke test

A throwaway local cluster (``tests/pg.py``) at its default durability (fsync on,
synchronous_commit on), on the machine the bench runs on. The peers — pgqueuer,
procrastinate and Oban for Python — each run in a virtual environment of their own under
``var/bench-venvs/`` (created here from PyPI with a Python 3.12 if missing; Oban needs
3.12+), driven through their public APIs at their defaults by the small runner scripts
in ``bench/pg_runners/``; pq runs from the project's environment through the same
harness. A peer that cannot be installed or run is reported and skipped.

Every workload runs in rounds, every system once per round in a rotating order, each on
a fresh database. Cells are the median round [min–max]; ratios are taken per round and
their median printed. Throughput is jobs handled / (last job handed to the job function -
the start), the same for every system: an acknowledgement still in flight at the end is
not waited for (pq's included). Results go to ``bench/results/<date>-pg.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import visibility
from bench.report import _fmt_rate, _integrity, _latency, _pipe, _ratio, results_stem
from bench.workloads import Result

ROOT = Path(__file__).resolve().parent.parent
RUNNERS = ROOT / "bench" / "pg_runners"
VENVS = ROOT / "var" / "bench-venvs"
RESULTS = ROOT / "bench" / "results"
PY312 = [Path("/root/.pyenv/versions/3.12.1/bin/python3.12")]
# peer -> (pip requirement, import name)
PEERS = {
    "pgqueuer": ("pgqueuer", "pgqueuer"),
    "procrastinate": ("procrastinate", "procrastinate"),
    "oban": ("oban", "oban"),
}
SYSTEMS = ["pq", "pgqueuer", "procrastinate", "oban"]
WORKLOADS = [
    # (key, label, runner workload, processes, systems)
    ("enqueue1", "enqueue, one job per call (jobs/s)", "enqueue1", 1, [*SYSTEMS, "pg-floor"]),
    ("batch", "enqueue in batches of 1,000 (jobs/s)", "batch", 1, SYSTEMS),
    ("drain1", "drain, 1 consumer process (jobs/s)", "drain", 1, SYSTEMS),
    ("drain4", "drain, 4 consumer processes (jobs/s)", "drain", 4, SYSTEMS),
    ("mixed", "mixed, 2 producers + 2 consumers (jobs/s)", "mixed", 2, SYSTEMS),
    ("light", "light load 100 jobs/s, 1 consumer", "light", 1, SYSTEMS),
]


def python312() -> Path | None:
    for candidate in PY312:
        if candidate.exists():
            return candidate
    found = shutil.which("python3.12") or shutil.which("python3.13")
    return Path(found) if found else None


def ensure_peer(peer: str) -> tuple[Path | None, str]:
    """The peer's venv Python, creating the venv from PyPI if needed; else (None, why)."""
    requirement, module = PEERS[peer]
    venv = VENVS / peer
    python = venv / "bin" / "python"
    check = [str(python), "-c", f"import {module}, psycopg"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python, ""
    base = python312()
    if base is None:
        return None, "no Python 3.12 or newer found (pyenv install 3.12, or python3.12 on PATH)"
    shutil.rmtree(venv, ignore_errors=True)
    made = subprocess.run([str(base), "-m", "venv", str(venv)], capture_output=True, text=True)
    if made.returncode != 0:
        return None, f"venv failed: {made.stderr.strip()[-200:]}"
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", requirement, "psycopg[binary]"],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if pip.returncode != 0:
        lines = [x for x in pip.stderr.splitlines() if "is ignored" not in x]
        return None, f"pip install {requirement} failed: {' '.join(lines)[-300:]}"
    if subprocess.run(check, capture_output=True).returncode != 0:
        return None, f"{module} does not import after install"
    return python, ""


def version(python: Path, package: str) -> str:
    out = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version('{package}'))"],
        capture_output=True, text=True,
    )  # fmt: skip
    return out.stdout.strip() or "?"


def run_runner(python: Path, system: str, url: str, workload: str, n: int, procs: int) -> Any:
    script = RUNNERS / f"{'floor' if system == 'pg-floor' else system}_runner.py"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [str(python), str(script), url, workload, str(n), str(procs)],
        capture_output=True, text=True, timeout=600, env=env, cwd=str(ROOT),
    )  # fmt: skip
    lines = [x for x in done.stdout.splitlines() if x.startswith("{")]
    if not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{system} {workload}: exit {done.returncode}: {tail[:200]}")
    out = json.loads(lines[-1])
    if "error" in out:
        raise RuntimeError(f"{system} {workload}: {out['error'][:200]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_peers", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--jobs", type=int, default=3_000, help="jobs per timed run")
    parser.add_argument(
        "--mixed-jobs", type=int, default=1_500, help="jobs per mixed run (peers reach 55/s)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.mixed_jobs = 500, 300
    started = time.monotonic()
    pythons: dict[str, Path] = {"pq": Path(sys.executable), "pg-floor": Path(sys.executable)}
    notes: list[str] = []
    versions: list[str] = []
    for peer in PEERS:
        python, why = ensure_peer(peer)
        if python is None:
            notes.append(f"- {peer}: not run: {why}")
            print(f"{peer}: not run: {why}", file=sys.stderr)
        else:
            pythons[peer] = python
            versions.append(f"{peer} {version(python, PEERS[peer][0])}")
    from tests.pg import PostgresCluster, find_binaries

    bin_dir = find_binaries()
    if bin_dir is None:
        print("PostgreSQL server binaries not found (apt-get install postgresql)")
        return 1
    cluster = PostgresCluster(bin_dir).start()
    cells: dict[tuple[str, str], Result] = {}
    errors: list[str] = []
    try:

        def fresh(system: str) -> str:
            url = cluster.url(cluster.create_database(system.replace("-", "_")))
            if system != "pg-floor":
                run_runner(pythons[system], system, url, "setup", 0, 0)
            return url

        for key, _label, workload, procs, systems in WORKLOADS:
            present = [s for s in systems if s in pythons]
            n = {"light": 100 if args.quick else 200, "mixed": args.mixed_jobs}.get(key, args.jobs)
            rounds: dict[str, list[Result]] = {s: [] for s in present}
            t = time.monotonic()
            for k in range(args.rounds):
                for system in present[k % len(present) :] + present[: k % len(present)]:
                    try:
                        out = run_runner(pythons[system], system, fresh(system), workload, n, procs)
                        rounds[system].append(Result(
                            rate=out.get("rate"), n=n, duplicates=out.get("duplicates"),
                            losses=out.get("losses"), p50_ms=out.get("p50_ms"),
                            p99_ms=out.get("p99_ms"),
                        ))  # fmt: skip
                    except Exception as error:
                        errors.append(str(error))
                        rounds[system].append(Result(note=f"failed: {error}"))
            for system, got in rounds.items():
                combined = Result.combine(got)
                ps = [r for r in got if r.p99_ms is not None]
                if ps:  # latency: the median round's p50 and p99
                    combined.p50_ms = sorted(r.p50_ms or 0 for r in ps)[len(ps) // 2]
                    combined.p99_ms = sorted(r.p99_ms or 0 for r in ps)[len(ps) // 2]
                cells[(key, system)] = combined
            print(f"  {key:<10} {time.monotonic() - t:6.1f} s", file=sys.stderr, flush=True)
        for shape in ("burst", "paced"):
            got = []
            for _ in range(args.rounds):
                try:
                    url = fresh("pq")
                    if shape == "burst":
                        got.append(visibility.measure(url, "FULL", args.jobs))
                    else:
                        got.append(visibility.measure(url, "FULL", 200, rate=200.0))
                except Exception as error:
                    errors.append(f"visibility {shape}: {error}")
                    got.append(Result(note=f"failed: {error}"))
            cells[("visibility", shape)] = Result.combine(got)
    finally:
        cluster.stop()
    text = render(cells, args, notes, errors, versions)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{results_stem(args.out, '-pg')}.md"
    seconds = time.monotonic() - started
    path.write_text(
        "# pq on PostgreSQL against its peers\n\nCommand: `make bench-pg` "
        f"(`.venv/bin/python -m bench.pg_peers`); run took {seconds:.0f} s.\n\n{text}\n",
        encoding="utf-8",
    )
    print(f"\nwritten: {path}\ntotal time {seconds:.0f} s")
    return 0


def render(
    cells: dict[tuple[str, str], Result],
    args: Any,
    notes: list[str],
    errors: list[str],
    versions: list[str],
) -> str:
    columns = [*SYSTEMS, "pg-floor"]
    head = ["workload", *columns, "pq ÷ pgqueuer", "pq ÷ procrastinate", "pq ÷ oban"]
    rows = []
    for key, label, _workload, _procs, _systems in WORKLOADS:
        pq = cells.get((key, "pq"))
        if key == "light":
            rows.append([f"{label}: pickup p50 / p99 (ms)"]
                        + [_latency(cells.get((key, s))) if (key, s) in cells else "n/a"
                           for s in columns] + ["", "", ""])  # fmt: skip
        else:
            rows.append([label]
                        + [_fmt_rate(cells[(key, s)]) if (key, s) in cells else "n/a"
                           for s in columns]
                        + [_ratio(pq, cells.get((key, p))) for p in PEERS])  # fmt: skip
        if key == "mixed":
            rows.append(["mixed: enqueue→pickup p50 / p99 (ms)"]
                        + [_latency(cells.get((key, s))) if (key, s) in cells else "n/a"
                           for s in columns] + ["", "", ""])  # fmt: skip
        rows.append([f"  duplicates/losses ({key})"]
                    + [_integrity(cells[(key, s)]).rsplit("/", 1)[0] if (key, s) in cells else ""
                       for s in columns] + ["", "", ""])  # fmt: skip
    floor = cells.get(("enqueue1", "pg-floor"))
    rows.append(["pq enqueue one per call ÷ one autocommit INSERT", _ratio(cells.get(("enqueue1",
                 "pq")), floor)] + [""] * (len(head) - 2))  # fmt: skip
    for shape, what in (("burst", f"a drain of {args.jobs:,} jobs"), ("paced", "200 jobs/s")):
        rows.append([f"pq Worker outcome visible after p50 / p99 / max (ms), {what}",
                     visibility.describe(cells.get(("visibility", shape)))]
                    + [""] * (len(head) - 2))  # fmt: skip
    title = (
        f"### PostgreSQL ({args.jobs:,} jobs per timed run, mixed {args.mixed_jobs:,};"
        f" {args.rounds} interleaved rounds; "
        "cells: median [min–max]; ratios: median [min–max] of the per-round ratios)"
    )
    parts = [title, "", _pipe(head, rows), "", "- peers: " + (", ".join(versions) or "none")]
    parts += notes
    if errors:
        parts += ["", "### Failures (reported, not fatal)", ""] + [f"- {e}" for e in errors]
    parts += ["", PG_NOTES]
    return "\n".join(parts)


PG_NOTES = """### How to read this
- pq: `enqueue` / `enqueue_many`, consumed through `pqcore.worker.Worker` at its defaults
  (up to 128 jobs a claim, only what it expects to start within 1 s, max_ack_delay
  50 ms), leases, fencing tokens and a history row per transition.
- pgqueuer: `Queries.enqueue`, `QueueManager.run()` at its defaults (batch_size 10); a
  finished job moves to its log table. procrastinate: `defer_async` / `batch_defer_async`,
  `run_worker_async()` at its defaults (concurrency 1). Oban for Python: `enqueue` /
  `enqueue_many`, one queue at limit 10 (it has no default queue).
- What the peers keep, read from their installed schemas and code (not measured here):
  pgqueuer deletes a finished job from its queue table and logs it in `pgqueuer_log`;
  a job whose worker's heartbeat is older than 30 s is picked again. procrastinate keeps
  each job's row and an event history (`procrastinate_events`); jobs of a stalled worker
  are retried only on request. Oban keeps the row (state, `attempted_by`, `errors`); its
  lifeline rescues jobs of vanished nodes after 300 s. None of the three hands out a
  per-lease fencing token that refuses a stale worker's outcome, as pq's lease token does.
- pg-floor: one `INSERT` of a few bytes per autocommit transaction (psycopg), the cost of one
  durable commit on this server.
- Light load: one producer at 100 jobs/s for 2 s, one consumer process; pickup = the job
  function starting - the enqueue call starting.
- Duplicates/losses: enqueue rows by count (what the system holds afterwards, read through
  its own API), the others by payload (every payload handed to the job function once)."""


if __name__ == "__main__":
    sys.exit(main())
