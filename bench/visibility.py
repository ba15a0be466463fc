"""Outcome-visibility delay of pq's ``Worker``, on either backend.

The ``Worker`` buffers outcomes and promises each is written within ``max_ack_delay``
seconds. Here consumer processes drain through a ``Worker`` and note, per job, when its
outcome was decided (the moment ``worker.done(job)`` is called); an observer on another
connection (this process) polls the history (``events_after(..., to_status=done)``) every
millisecond and notes when it first sees each job done. A job became visible between the
start of the last poll that did not see it and the start of the first that did (a read's
snapshot is taken when it starts); the delay reported is the upper end of that window
minus the decision (both CLOCK_MONOTONIC, shared by the processes), so it errs on the long
side by up to one poll gap. Jobs whose *lower* end is already past ``max_ack_delay`` are
counted as late for certain, whatever the observer's own stalls.

Two shapes: ``burst`` (a prefilled queue drained flat out) and ``paced`` (a producer at
light load, where an outcome has no next claim to ride with and waits for the timer).
"""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter
from typing import Any

from bench.workloads import Result, _percentiles
from pqcore import QueueSettings, open_queue
from pqcore.states import JobState
from pqcore.worker import DEFAULT_MAX_ACK_DELAY, Worker

CTX = multiprocessing.get_context("fork")
POLL = 0.001
# On PostgreSQL history ids come from a sequence: a transaction holding a lower id may
# commit after a higher one was seen, so the observer looks back this many ids.
LOOKBACK = 512


def _open(target: str, sync: str) -> Any:
    if target.startswith(("postgres://", "postgresql://")):
        return open_queue(target)
    settings = QueueSettings(db=target, sqlite_synchronous=sync, lease_seconds=60)
    return open_queue(target, settings=settings)


def _consumer(target: str, sync: str, index: int, go: Any, stop: Any, out: Any) -> None:
    try:
        queue = _open(target, sync)
        decided: dict[int, float] = {}
        twice = 0
        worker = Worker(queue, f"vis-{index}")
        go.wait(timeout=120)
        while True:
            job = worker.next(timeout=0.05)
            if job is None:
                if stop.is_set():
                    break
                continue
            if job.id in decided:
                twice += 1
            decided[job.id] = time.monotonic()
            worker.done(job)
        worker.close()
        queue.close()
        out.put({"decided": decided, "twice": twice})
    except BaseException as error:
        out.put({"fatal": f"{type(error).__name__}: {error}"})


def _producer(target: str, sync: str, n: int, rate: float, go: Any, out: Any) -> None:
    try:
        queue = _open(target, sync)
        go.wait(timeout=120)
        start = time.monotonic()
        for i in range(n):
            pause = start + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            queue.enqueue(f"job-{i}")
        queue.close()
        out.put({"produced": n})
    except BaseException as error:
        out.put({"fatal": f"{type(error).__name__}: {error}"})


def measure(
    target: str, sync: str, n: int, *, consumers: int = 2, rate: float | None = None
) -> Result:
    """``rate`` None: prefill ``n`` jobs and drain them; else a producer at ``rate``/s."""
    observer = _open(target, sync)
    if rate is None:
        for start in range(0, n, 10_000):
            observer.enqueue_many([f"job-{i}" for i in range(start, min(n, start + 10_000))])
    cursor = observer.last_event_id()
    go, stop = CTX.Event(), CTX.Event()
    out = CTX.Queue()
    procs = [
        CTX.Process(target=_consumer, args=(target, sync, k, go, stop, out))
        for k in range(consumers)
    ]
    if rate is not None:
        procs.append(CTX.Process(target=_producer, args=(target, sync, n, rate, go, out)))
    for p in procs:
        p.start()
    time.sleep(0.5)  # imports and connections before the start
    seen: dict[int, tuple[float, float]] = {}  # job -> (last poll not seeing it, first seeing)
    gaps: list[float] = []
    lookback = LOOKBACK if target.startswith("postgres") else 0
    deadline = time.monotonic() + 300
    go.set()
    started = previous = time.monotonic()
    while len(seen) < n and time.monotonic() < deadline:
        if any(p.exitcode not in (None, 0) for p in procs):
            break
        after = max(0, cursor - lookback)
        poll = time.monotonic()
        gaps.append(poll - previous)
        while True:
            events = observer.events_after(after, to_status=JobState.DONE, limit=1000)
            for event in events:
                seen.setdefault(event.job_id, (previous, poll))
            if events:
                cursor = max(cursor, events[-1].id)
                after = events[-1].id
            if len(events) < 1000:
                break
        previous = poll
        time.sleep(POLL)
    elapsed = time.monotonic() - started
    stop.set()
    outs = []
    for _ in procs:
        try:
            outs.append(out.get(timeout=60))
        except Exception:
            break
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
    observer.close()
    fatal = next((o["fatal"] for o in outs if "fatal" in o), None)
    if fatal:
        raise RuntimeError(fatal)
    decided: dict[int, float] = {}
    counts: Counter[int] = Counter()
    for o in outs:
        for job_id, at in o.get("decided", {}).items():
            counts[job_id] += 1
            decided[job_id] = min(at, decided.get(job_id, at))
    delays = sorted((seen[j][1] - t) * 1000 for j, t in decided.items() if j in seen)
    limit = DEFAULT_MAX_ACK_DELAY
    late = sum(1 for j, t in decided.items() if j in seen and seen[j][0] - t > limit)
    p50, p99 = _percentiles(delays)
    return Result(
        rate=len(decided) / elapsed if elapsed > 0 else None,
        n=n,
        duplicates=sum(c - 1 for c in counts.values()) + sum(o.get("twice", 0) for o in outs),
        losses=n - len(seen),
        p50_ms=p50,
        p99_ms=p99,
        sync=sync,
        waits_ms=delays,
        errors=late,  # outcomes late for certain (see the module's docstring)
        first_error=None,
        idle_cpu=max(gaps) if gaps else None,  # the observer's longest poll gap (s)
        note="" if len(decided) == n else f"decided {len(decided)} of {n}",
    )


def limit_ms() -> float:
    return DEFAULT_MAX_ACK_DELAY * 1000


def describe(r: Any) -> str:
    if not isinstance(r, Result):
        return "—"
    if r.note.startswith("failed"):
        return "failed"
    top = max(r.waits_ms) if r.waits_ms else None
    gap = (r.idle_cpu or 0) * 1000
    return (
        f"{r.p50_ms or 0:.1f} / {r.p99_ms or 0:.1f} / {top or 0:.1f};"
        f" late for certain {r.errors} of {len(r.waits_ms):,}; longest poll gap {gap:.0f}"
    )
