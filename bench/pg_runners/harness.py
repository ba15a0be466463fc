"""The process plumbing every PostgreSQL runner shares (standard library only: it runs in
each peer's own virtual environment, under that peer's Python).

A runner module defines a class with these methods, each driving the system through its
own public API at its own defaults:

    setup()                      install the schema (once per database, untimed)
    enqueue_one(payloads)        one job per call
    enqueue_batch(payloads)      the system's batch insert, in chunks of CHUNK
    consume(on_job, stop)        run the system's worker until ``stop`` is set; the job
                                 function calls ``on_job(payload)`` and does nothing else
    held()                       jobs the system holds after an enqueue run (its own count)

``python <runner>.py URL WORKLOAD JOBS PROCS`` runs one workload and prints one JSON line.
Workloads: enqueue1, batch, drain (PROCS consumers on a prefilled queue), mixed (2
producers, one per call, + 2 consumers), light (one producer at LIGHT_RATE jobs/s + one
consumer). Payloads carry the monotonic time they were enqueued, so consumers measure the
pickup latency (CLOCK_MONOTONIC is shared by the processes of one machine); every payload
handled is recorded, so duplicates and losses are counted by payload.
"""

from __future__ import annotations

import json
import multiprocessing
import statistics
import sys
import threading
import time
from collections import Counter
from typing import Any

CHUNK = 1000
LIGHT_RATE = 100.0
CTX = multiprocessing.get_context("fork")


def _payload(i: int) -> str:
    return f"job-{i}@{time.monotonic():.6f}"


def _job_index(payload: str) -> str:
    return payload.split("@", 1)[0]


def _consumer(make: Any, target: int, counter: Any, stop: Any, go: Any, out: Any) -> None:
    try:
        system = make()
        seen: list[tuple[str, float]] = []
        last = [0.0]
        lock = threading.Lock()

        def on_job(payload: str) -> None:
            now = time.monotonic()
            with lock:
                seen.append((payload, now))
                last[0] = now
            with counter.get_lock():
                counter.value += 1
                if counter.value >= target:
                    stop.set()

        go.wait(timeout=120)
        start = time.monotonic()
        system.consume(on_job, stop)
        out.put({"seen": seen, "start": start, "end": last[0] or time.monotonic()})
    except BaseException as error:
        stop.set()
        out.put({"fatal": f"consumer: {type(error).__name__}: {error}"})


def _producer(make: Any, indices: list[int], rate: float | None, go: Any, out: Any) -> None:
    try:
        system = make()
        go.wait(timeout=120)
        start = time.monotonic()
        for k, i in enumerate(indices):
            if rate:
                pause = start + k / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            system.enqueue_one([_payload(i)])
        out.put({"start": start, "end": time.monotonic()})
    except BaseException as error:
        out.put({"fatal": f"producer: {type(error).__name__}: {error}"})


def _run_procs(make: Any, n: int, consumers: int, producers: list[list[int]],
               rate: float | None) -> dict[str, Any]:  # fmt: skip
    counter = CTX.Value("i", 0)
    stop, go = CTX.Event(), CTX.Event()
    out = CTX.Queue()
    procs = [
        CTX.Process(target=_consumer, args=(make, n, counter, stop, go, out))
        for _ in range(consumers)
    ] + [CTX.Process(target=_producer, args=(make, share, rate, go, out)) for share in producers]
    for p in procs:
        p.start()
    time.sleep(1.0)  # imports, connections, workers registered before the start
    go.set()
    deadline = time.monotonic() + 300
    results = []
    while len(results) < len(procs) and time.monotonic() < deadline:
        try:
            results.append(out.get(timeout=1.0))
        except Exception:
            if all(not p.is_alive() for p in procs):
                break
    timed_out = len(results) < len(procs)
    stop.set()
    for p in procs:
        p.join(timeout=20)
        if p.is_alive():
            p.kill()
    fatal = [r["fatal"] for r in results if "fatal" in r]
    if fatal:
        return {"error": fatal[0]}
    if timed_out:
        return {"error": f"timed out: {counter.value} of {n} jobs handled"}
    seen = [s for r in results for s in r.get("seen", [])]
    counts = Counter(_job_index(p) for p, _ in seen)
    waits = sorted(max(0.0, t - float(p.split("@", 1)[1])) * 1000 for p, t in seen)
    start = min(r["start"] for r in results)
    end = max(r["end"] for r in results)
    out_: dict[str, Any] = {
        "rate": len(seen) / (end - start) if end > start else None,
        "duplicates": sum(c - 1 for c in counts.values() if c > 1),
        "losses": n - len(counts),
    }
    if waits:
        out_["p50_ms"] = statistics.median(waits)
        out_["p99_ms"] = waits[min(len(waits) - 1, int(len(waits) * 0.99))]
    return out_


def _prefill(make: Any, n: int) -> None:
    system = make()
    for k in range(0, n, CHUNK):
        system.enqueue_batch([_payload(i) for i in range(k, min(n, k + CHUNK))])


def main(make: Any, argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    workload, n, procs = args[0], int(args[1]), int(args[2])
    try:
        result = run(make, workload, n, procs)
    except BaseException as error:
        result = {"error": f"{type(error).__name__}: {error}"}
    print(json.dumps(result), flush=True)
    return 0


def run(make: Any, workload: str, n: int, procs: int) -> dict[str, Any]:
    if workload == "setup":
        make().setup()
        return {"ok": True}
    if workload in ("enqueue1", "batch"):
        system = make()
        payloads = [_payload(i) for i in range(n)]
        start = time.monotonic()
        if workload == "enqueue1":
            system.enqueue_one(payloads)
        else:
            for k in range(0, n, CHUNK):
                system.enqueue_batch(payloads[k : k + CHUNK])
        spent = time.monotonic() - start
        held = system.held()
        return {"rate": n / spent, "duplicates": max(0, held - n), "losses": max(0, n - held)}
    if workload == "drain":
        # Prefilled in a child of its own: no connection of this process is forked.
        filler = CTX.Process(target=_prefill, args=(make, n))
        filler.start()
        filler.join(timeout=300)
        if filler.exitcode != 0:
            return {"error": f"prefill failed (exit {filler.exitcode})"}
        result = _run_procs(make, n, procs, [], None)
        result.pop("p50_ms", None)  # prefilled: the wait is the queue's age, not a pickup
        result.pop("p99_ms", None)
        return result
    if workload == "mixed":
        shares = [list(range(k, n, 2)) for k in range(2)]
        return _run_procs(make, n, 2, shares, None)
    if workload == "light":
        return _run_procs(make, n, 1, [list(range(n))], LIGHT_RATE)
    raise SystemExit(f"unknown workload {workload}")
