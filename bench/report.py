"""Tables (printed, and the same in the markdown file), targets and the chart."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import visibility
from bench.workloads import Result, percentile, round_ratios

COLUMNS = ["pq", "huey", "persist-queue", "litequeue", "raw-floor", "one-commit"]
SYNCS = ("FULL", "NORMAL")
PEER_PACKAGES = ["huey", "persist-queue", "litequeue", "matplotlib"]


def results_stem(out: Path, suffix: str = "") -> str:
    """Today's name for a results file, ``<date><suffix>``; a later run the same day gets
    ``<date><suffix>-2``, ``-3``, ... so that it does not overwrite the earlier one."""
    today = time.strftime("%Y-%m-%d", time.gmtime()) + suffix
    stem, n = today, 2
    while any(out.glob(f"{stem}.*")):
        stem, n = f"{today}-{n}", n + 1
    return stem


def _cell(results: dict[str, Any], workload: str, system: str, sync: str) -> Any:
    return results["cells"].get((workload, system, sync))


def _rate(r: Any) -> float | None:
    return r.rate if isinstance(r, Result) and r.rate else None


def _num(value: float) -> str:
    if value >= 100_000:
        return f"{value / 1000:,.0f}k"
    if value >= 10_000:
        return f"{value / 1000:.1f}k"
    return f"{value:,.0f}"


def _fmt_rate(r: Any) -> str:
    """Median round, with the min and max round: ``12,697 [11.9k–13.1k]``."""
    if isinstance(r, Result) and r.note.startswith("failed") and r.rate is None:
        return "failed"
    value = _rate(r)
    if value is None:
        return "—"
    spread = r.spread if isinstance(r, Result) else None
    failed = sum(1 for x in r.rates if x is None) if isinstance(r, Result) else 0
    text = f"{value:,.0f}"
    if spread and len([x for x in r.rates if x is not None]) > 1:
        text += f" [{_num(spread[0])}–{_num(spread[1])}]"
    capped = " (time cap)" if isinstance(r, Result) and r.capped else ""
    return text + capped + (f" ({failed} failed)" if failed else "")


def _ratios(a: Any, b: Any) -> list[float]:
    if not isinstance(a, Result) or not isinstance(b, Result):
        return []
    return round_ratios(a, b)


def ratio_value(a: Any, b: Any) -> float | None:
    """The median of the per-round ratios a ÷ b."""
    got = _ratios(a, b)
    return statistics.median(got) if got else None


def _ratio(a: Any, b: Any) -> str:
    got = _ratios(a, b)
    if not got:
        return "—"
    text = f"{statistics.median(got):.2f}×"
    return text + (f" [{min(got):.2f}–{max(got):.2f}]" if len(got) > 1 else "")


def _ms(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "—"


def _integrity(r: Any) -> str:
    if not isinstance(r, Result) or r.duplicates is None:
        return "failed" if isinstance(r, Result) and r.note else "—"
    return f"{r.duplicates}/{r.losses}/{r.errors}"


def _scale(results: dict[str, Any], sync: str) -> tuple[dict[str, float], dict[str, float]]:
    small = _cell(results, "scale1000", "pq", sync)
    big = _cell(results, f"scale{results['scale_jobs']}", "pq", sync)
    if not isinstance(small, dict) or not isinstance(big, dict):
        return {}, {}
    out_small = {k: percentile(small[k], 0.5) * 1000 for k in ("claim", "stats")}
    out_big = {k: percentile(big[k], 0.5) * 1000 for k in ("claim", "stats")}
    out_big["build_s"] = big["build_s"]
    return out_small, out_big


def table(results: dict[str, Any], sync: str) -> str:
    n = results["jobs"][sync]
    head = ["workload", *COLUMNS, "pq ÷ huey", "pq ÷ floor"]
    rows: list[list[str]] = []

    def rate_row(
        label: str,
        workload: str,
        floor: str,
        systems: list[str] = COLUMNS,
        pq_as: str = "pq",
    ) -> None:
        cells = {s: _cell(results, workload, s, sync) for s in systems}
        pq = _cell(results, workload, pq_as, sync)
        cells["pq"] = pq
        rows.append(
            [label]
            + [_fmt_rate(cells[s]) if s in cells else "n/a" for s in COLUMNS]
            + [_ratio(pq, cells.get("huey")), _ratio(pq, _cell(results, workload, floor, sync))]
        )

    def integrity_row(label: str, workload: str, systems: list[str], pq_as: str = "pq") -> None:
        rows.append(
            [label]
            + [
                _integrity(_cell(results, workload, pq_as if s == "pq" else s, sync))
                if s in systems
                else ""
                for s in COLUMNS
            ]
            + ["", ""]
        )

    queues = COLUMNS[:5]
    rate_row("1 enqueue, one job per call (jobs/s)", "enqueue", "one-commit")
    integrity_row("1 duplicates/losses (by count)", "enqueue", COLUMNS)
    rate_row(
        "1 enqueue_many, batches of 1,000 (jobs/s)",
        "enqueue_batch",
        "raw-floor",
        ["pq", "raw-floor"],
    )
    rows.append(
        ["1 enqueue_many: jobs per CPU-second of the producer (load-independent)"]
        + [_cpu_rate(_cell(results, "enqueue_batch", s, sync)) for s in COLUMNS]
        + ["", ""]
    )
    integrity_row("1 enqueue_many duplicates/losses (by count)", "enqueue_batch",
                  ["pq", "raw-floor"])  # fmt: skip
    rate_row("2 drain, 1 process, pq's Worker (jobs/s)", "drain1", "raw-floor", queues)
    integrity_row("2 duplicates/losses/errors", "drain1", queues)
    rate_row(
        "2b per call, 1 process: pq claim(limit=1)+complete; peers' get+ack (jobs/s)",
        "drain1",
        "raw-floor",
        queues,
        pq_as="pq-call",
    )
    integrity_row("2b duplicates/losses/errors", "drain1", ["pq"], pq_as="pq-call")
    rate_row("3 drain, 4 processes, pq's Worker (jobs/s)", "drain4", "raw-floor", queues)
    integrity_row("3 duplicates/losses/errors", "drain4", queues)
    rate_row("4 mixed, 2 producers + 2 consumers (jobs/s)", "mixed", "raw-floor", queues)
    rows.append(
        ["4 enqueue→claim p50 / p99 (ms)"]
        + [_latency(_cell(results, "mixed", s, sync)) for s in queues]
        + ["", "", ""]
    )
    integrity_row("4 duplicates/losses/errors", "mixed", queues)
    if any(_cell(results, "light", s, sync) for s in queues):
        rows.append(
            ["5 light load 200/s: pickup p50 / p99 (ms)"]
            + [_latency(_cell(results, "light", s, sync)) for s in queues]
            + ["", "", ""]
        )
        rows.append(
            ["5 idle consumer CPU (% of one core)"]
            + [_cpu(_cell(results, "light", s, sync)) for s in queues]
            + ["", "", ""]
        )
        poll = _cell(results, "light", "pq-poll", sync)
        rows.append(
            [
                "5 pq with the doorbell off (50 ms poll): p50 / p99 (ms), idle CPU",
                f"{_latency(poll)}, {_cpu(poll)}",
            ]
            + [""] * 7
        )
        integrity_row("5 duplicates/losses/errors", "light", queues)
    small, big = _scale(results, sync)
    jobs = f"{results['scale_jobs']:,}"
    for key, label in (("claim", "claim"), ("stats", "stats")):
        if small:
            value = (
                f"{small[key]:.3f} / {big[key]:.3f} ({big[key] / small[key]:.2f}×)"
                if small[key]
                else "—"
            )
        else:
            value = "failed"
        rows.append([f"6 {label} p50 at 1,000 / {jobs} jobs (ms)", value] + [""] * 7)
    reads = []
    for s in COLUMNS:
        r = _cell(results, "enqueue", s, sync)
        reads.append(r.sync if isinstance(r, Result) and r.sync else "—")
    rows.append(["synchronous / journal read back", *reads, "", ""])
    rounds = results.get("rounds", 3)
    title = (
        f"### synchronous={sync} ({n:,} jobs per timed run, {rounds} interleaved rounds;"
        " cells: median [min–max] of the rounds; ratios: median [min–max] of the per-round"
        " ratios)"
    )
    return title + "\n\n" + _pipe(head, rows) + "\n\n" + pq_only(results, sync)


def pq_only(results: dict[str, Any], sync: str) -> str:
    """Workload 7 (the services) against the Worker drain of the same rounds, and the
    Worker's outcome-visibility delay."""
    n = results["jobs"][sync]
    drain = _cell(results, "endtoend", "pq", sync)
    rows = []
    for k in (1, 2, 4):
        cell = _cell(results, "endtoend", f"svc x{k}", sync)
        rows.append([f"7 end to end via the services, {k} consumer(s) (jobs/s)",
                     _fmt_rate(cell), _ratio(cell, drain), _integrity(cell)])  # fmt: skip
    rows.append(["7 the Worker drain, 4 processes, same rounds (jobs/s)", _fmt_rate(drain), "1×",
                 _integrity(drain)])  # fmt: skip
    for shape, label in (("burst", f"a drain of {n:,} jobs, 2 Workers"),
                         ("paced", "light load 200 jobs/s, 2 Workers")):  # fmt: skip
        cell = _cell(results, "visibility", shape, sync)
        rows.append([f"8 outcome visible to another connection after p50 / p99 / max (ms): {label}",
                     visibility.describe(cell), "", _integrity(cell)])  # fmt: skip
    head = ["pq only", "figure", "÷ Worker drain x4 (per round)", "dup/loss/err"]
    return _pipe(head, rows)


def _latency(r: Any) -> str:
    if not isinstance(r, Result):
        return "—"
    if r.note:
        return "failed"
    return f"{_ms(r.p50_ms)} / {_ms(r.p99_ms)}"


def _cpu_rate(r: Any) -> str:
    if not isinstance(r, Result) or r.cpu_rate is None:
        return ""
    return f"{r.cpu_rate:,.0f}"


def _cpu(r: Any) -> str:
    if not isinstance(r, Result) or r.idle_cpu is None:
        return "—"
    return f"{r.idle_cpu * 100:.2f}%"


def _pipe(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    return "\n".join(lines)


def targets(results: dict[str, Any]) -> str:
    """Issue 15's targets (and issue 7's that still hold), each a ratio of the same rounds."""

    def cell(workload: str, system: str, sync: str = "FULL") -> Any:
        return _cell(results, workload, system, sync)

    def check(label: str, goal: str, value: float | None, ok: bool | None) -> list[str]:
        shown = "—" if value is None else f"{value:,.2f}"
        verdict = "n/a" if ok is None else ("met" if ok else "NOT met")
        return [label, goal, shown, verdict]

    def at_least(label: str, value: float | None, goal: float) -> list[str]:
        return check(label, f"≥ {goal:g}", value, None if value is None else value >= goal)

    def at_most(label: str, value: float | None, goal: float) -> list[str]:
        return check(label, f"≤ {goal:g}", value, None if value is None else value <= goal)

    rows = [
        at_least("end to end, 4 consumers ÷ Worker drain x4 (FULL)",
                 ratio_value(cell("endtoend", "svc x4"), cell("endtoend", "pq")), 0.5),
        at_least("enqueue one per call ÷ one tiny commit (FULL)",
                 ratio_value(cell("enqueue", "pq"), cell("enqueue", "one-commit")), 0.85),
        at_least("enqueue one per call ÷ Huey (NORMAL)",
                 ratio_value(cell("enqueue", "pq", "NORMAL"), cell("enqueue", "huey", "NORMAL")),
                 0.5),
        at_least("per-call claim+complete ÷ Huey's dequeue (FULL)",
                 ratio_value(cell("drain1", "pq-call"), cell("drain1", "huey")), 0.8),
        at_least("mixed 2+2 ÷ Huey (FULL)",
                 ratio_value(cell("mixed", "pq"), cell("mixed", "huey")), 1.5),
    ]  # fmt: skip
    mixed = cell("mixed", "pq")
    rows.append(at_most("mixed 2+2 enqueue→claim p99, ms (FULL)",
                        mixed.p99_ms if isinstance(mixed, Result) else None, 50))  # fmt: skip
    rows.append(at_least("Worker drain, 1 process ÷ Huey (NORMAL)", ratio_value(
        cell("drain1", "pq", "NORMAL"), cell("drain1", "huey", "NORMAL")), 1.0))  # fmt: skip
    rows.append(at_least("Worker drain, 4 processes ÷ Huey (NORMAL)", ratio_value(
        cell("drain4", "pq", "NORMAL"), cell("drain4", "huey", "NORMAL")), 1.0))  # fmt: skip
    rows.append(at_least("mixed 2+2 ÷ Huey (NORMAL)", ratio_value(
        cell("mixed", "pq", "NORMAL"), cell("mixed", "huey", "NORMAL")), 0.7))  # fmt: skip
    for sync in SYNCS:
        for shape in ("burst", "paced"):
            r = cell("visibility", shape, sync)
            top = max(r.waits_ms) if isinstance(r, Result) and r.waits_ms else None
            rows.append(at_most(f"outcome visible within max_ack_delay, max ms ({shape}, {sync})",
                                top, visibility.limit_ms()))  # fmt: skip
    light = cell("light", "pq")
    p99 = light.p99_ms if isinstance(light, Result) else None
    rows.append(at_most("light-load pickup p99, ms (FULL, issue 7)", p99, 5))
    cpu = light.idle_cpu * 100 if isinstance(light, Result) and light.idle_cpu is not None else None
    rows.append(check("idle consumer CPU, % of a core (issue 7)", "< 1", cpu,
                      None if cpu is None else cpu < 1))  # fmt: skip
    dups = losses = errs = 0
    for (workload, system, _sync), r in results["cells"].items():
        counted = system.startswith(("pq", "svc")) or workload == "visibility"
        if counted and isinstance(r, Result) and r.duplicates is not None:
            dups, losses = dups + r.duplicates, losses + (r.losses or 0)
            errs += r.errors if workload != "visibility" else 0
    bad = dups + losses + errs
    rows.append(
        ["pq duplicates / losses / errors, every workload, both levels", "0 / 0 / 0",
         f"{dups} / {losses} / {errs}", "met" if bad == 0 else "NOT met"]
    )  # fmt: skip
    return "### Targets (issue 15; ratios: median of the per-round ratios)\n\n" + _pipe(
        ["target", "goal", "measured", "verdict"], rows
    )


def render(results: dict[str, Any]) -> str:
    parts = [table(results, sync) for sync in SYNCS]
    parts.append(targets(results))
    seen = []
    for (workload, system, sync), cell in sorted(results["cells"].items()):
        if isinstance(cell, Result) and cell.first_error:
            seen.append(f"- {workload} {system} {sync}: {cell.errors} error(s), first: "
                        f"{cell.first_error[:160]}")  # fmt: skip
    if seen:
        parts.append("### Errors that reached the caller\n\n" + "\n".join(seen))
    if results["errors"]:
        parts.append("### Failures (reported, not fatal)\n\n" + "\n".join(
            f"- {e}" for e in results["errors"]
        ))  # fmt: skip
    parts.append(NOTES)
    return "\n\n".join(parts)


NOTES = """### How to read this
- Every timed run handles the number of jobs in the title. Each workload runs in rounds, every
  system once per round in a rotating order; a cell is the median round [min–max]. A ratio is
  pq's figure over the peer's *in the same round*, and the median [min–max] of those is shown.
- pq consumes through `pqcore.worker.Worker` at its defaults (claims up to 128 at a time,
  only what it expects to start within a second; completions written with the next claim,
  every outcome meant to be written within `max_ack_delay`, 50 ms):
  acknowledgements, leases and the per-transition history are all kept. Huey deletes a job
  when it is dequeued: no acknowledgement, a crash loses the job.
- 2b is what a user who does not use the `Worker` gets: `claim(limit=1)` then `complete`, two
  transactions a job. The peers have only one-at-a-time get+ack, so their 2b cells are their
  drain figures of the same rounds (Huey: dequeue alone).
- raw-floor: claim = one `UPDATE ... RETURNING` in `BEGIN IMMEDIATE`, ack = one guarded
  `UPDATE`: two commits a job. one-commit: an `INSERT` of a few bytes in its own transaction.
- persist-queue runs with `auto_resume=False` (its default re-queues other processes' unacked
  items whenever a process opens the queue); its duplicates come from its claim, a SELECT then
  an UPDATE without a write lock between them.
- A peer's drain stops after `--peer-seconds` (15 s) if it has not finished: its cell says
  "(time cap)" and its rate is over the jobs it did in that time, which is at least thousands
  at its slowest; the jobs it did not get to are counted in its queue, and any job neither
  done nor still queued is a loss. pq is never capped: it drains every job.
- Duplicates/losses of the enqueue rows are by count (jobs held afterwards vs calls made);
  of the consuming rows by payload (every payload completed exactly once).
- Light load runs at FULL only (pickup p50 / p99 at NORMAL were 0.59 / 1.93 ms against
  FULL's 0.83 / 1.76 ms on 2026-12-06, idle CPU 0.09 % against 0.12 %; the run is 80 s
  of the bench): 2 consumers wait idle for a second (their CPU is read from
  /proc/<pid>/task/*/schedstat), then one producer enqueues 200 jobs/s. The peers have no
  wake-up signal: their consumers re-check every 1 ms (best latency, at a CPU cost).
- Workload 6 builds its table with `pqcore.testing.seed_finished_jobs` (done jobs with full
  history, set-wise), then times 200 claims and 200 `stats()` calls.
- Workload 7 runs the real services: job files are written and the real `services.producer`
  enqueues them (its start-up reconcile, untimed), then 1, 2 or 4 `services.consumer` processes
  with the default file handler and zero work time; the clock runs from the first consumer
  registering to the last job done. It is compared, round by round, with the `Worker` drain
  with 4 processes of the same rounds.
- Workload 8: consumers drain through the `Worker` and note when each `done()` was called; an
  observer on another connection polls `events_after(..., to_status=done)` every millisecond.
  Delay = first poll that saw the job - the decision (an upper bound, by at most one poll gap,
  printed); "late for certain" counts jobs already not visible one poll *after* max_ack_delay.
- Workload 1 (one job per call) runs every system in one process, alternating blocks of
  50 jobs, so the disk's slow spells cost every system alike."""


def machine() -> list[str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    versions = []
    for name in PEER_PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} missing")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()  # fmt: skip
        commit += " (with uncommitted changes)" if dirty else ""
    except OSError:
        commit = "?"
    return [
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {platform.platform()}, {os.cpu_count()} cores ({cpu}), {mem} RAM,"
        f" filesystem {_filesystem()}",
        f"- load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}",
        f"- peers: {', '.join(versions)}",
        f"- pq commit: {commit}",
    ]


def _filesystem() -> str:
    path = str(Path(__file__).resolve())
    best = ("?", "?")
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            device, mount, kind = line.split()[:3]
            if path.startswith(mount) and len(mount) >= len(best[0]):
                best = (mount, f"{kind} on {device}")
    except OSError:
        pass
    return best[1]


def markdown(results: dict[str, Any], text: str, chart_name: str) -> str:
    return "\n".join(
        [
            "# pq benchmark",
            "",
            "Command: `make bench` (`.venv/bin/python -m bench`); "
            f"run took {results['seconds']:.0f} s.",
            "",
            *machine(),
            "",
            text,
            "",
            f"![throughput per system per workload]({chart_name})",
            "",
        ]
    )


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = [
        ("enqueue", "1 enqueue\none per call"),
        ("enqueue_batch", "1 enqueue_many"),
        ("drain1", "2 drain\n1 consumer"),
        ("drain4", "3 drain\n4 consumers"),
        ("mixed", "4 mixed\n2P + 2C"),
    ]
    systems = COLUMNS
    fig, axes = plt.subplots(1, len(SYNCS), figsize=(15, 5.5), sharey=True)
    width = 0.8 / len(systems)
    for ax, sync in zip(axes, SYNCS, strict=True):
        for k, system in enumerate(systems):
            values = [_rate(_cell(results, w, system, sync)) or 0 for w, _ in workloads]
            xs = [i + (k - len(systems) / 2 + 0.5) * width for i in range(len(workloads))]
            ax.bar(xs, values, width, label=system)
        ax.set_xticks(range(len(workloads)), [label for _, label in workloads], fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"synchronous={sync}, WAL ({results['jobs'][sync]:,} jobs)")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("jobs per second (log scale)")
    axes[-1].legend(fontsize=8)
    fig.suptitle("pq vs peers, throughput per workload (same run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
