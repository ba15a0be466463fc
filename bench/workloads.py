"""The workloads of issue 7, each run in fresh processes on a fresh database.

Every producer and consumer is its own process (fork), opens its own connections, waits
on a barrier with the others, then runs; throughput is jobs / (last finish - barrier).
Consumers record the payload of every job they completed, so duplicates and losses are
counted for every system. Latencies use CLOCK_MONOTONIC, which all processes share.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.systems import SYSTEMS, Adapter

CTX = multiprocessing.get_context("fork")
ERROR_LIMIT = 1000  # a consumer gives up after this many errors (counted, reported)


@dataclasses.dataclass
class Result:
    rate: float | None = None  # jobs per second
    n: int = 0
    duplicates: int | None = None
    losses: int | None = None
    errors: int = 0
    first_error: str | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    idle_cpu: float | None = None  # fraction of one core, per consumer
    cpu_rate: float | None = None  # jobs per CPU-second of the (single) process
    sync: str = ""
    note: str = ""  # set: the round failed
    capped: str = ""  # set: the round stopped at a time cap before every job was done
    waits_ms: list[float] = dataclasses.field(default_factory=list, repr=False)
    # The rate of every round, in round order (None: that round failed), so a ratio can be
    # taken round by round against a peer measured in the same round.
    rates: list[float | None] = dataclasses.field(default_factory=list)

    @property
    def spread(self) -> tuple[float, float] | None:
        """(min, max) of the round rates."""
        ok = [r for r in self.rates if r is not None]
        return (min(ok), max(ok)) if ok else None

    @classmethod
    def combine(cls, rounds: list[Result]) -> Result:
        """Rounds of one system in one workload: median rate, summed counts, pooled waits."""
        ok = [r for r in rounds if not r.note]
        if not ok:
            return dataclasses.replace(rounds[0], rates=[None] * len(rounds))
        rates = [r.rate for r in ok if r.rate is not None]
        waits = sorted(w for r in ok for w in r.waits_ms)
        p50, p99 = _percentiles(waits)
        cpus = [r.idle_cpu for r in ok if r.idle_cpu is not None]
        cpu_rates = [r.cpu_rate for r in ok if r.cpu_rate is not None]
        return cls(
            rate=statistics.median(rates) if rates else None,
            n=sum(r.n for r in ok),
            duplicates=None if ok[0].duplicates is None else sum(r.duplicates or 0 for r in ok),
            losses=None if ok[0].losses is None else sum(r.losses or 0 for r in ok),
            errors=sum(r.errors for r in ok),
            first_error=next((r.first_error for r in ok if r.first_error), None),
            p50_ms=p50,
            p99_ms=p99,
            idle_cpu=max(cpus) if cpus else None,
            cpu_rate=statistics.median(cpu_rates) if cpu_rates else None,
            sync=ok[0].sync,
            note="; ".join(r.note for r in rounds if r.note),
            capped="; ".join(r.capped for r in ok if r.capped),
            waits_ms=waits,
            rates=[None if r.note else r.rate for r in rounds],
        )


def round_ratios(a: Result | None, b: Result | None) -> list[float]:
    """a ÷ b in every round both completed (they ran in the same rounds)."""
    if a is None or b is None:
        return []
    return [x / y for x, y in zip(a.rates, b.rates, strict=False) if x and y]


def _percentiles(waits: list[float]) -> tuple[float | None, float | None]:
    if not waits:
        return None, None
    ordered = sorted(waits)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# ------------------------------------------------------------------ process plumbing


def _child(
    system: str,
    directory: Path,
    sync: str,
    role: Callable[..., dict[str, Any]],
    args: tuple[Any, ...],
    barrier: Any,
    results: Any,
    index: int,
) -> None:
    adapter: Adapter | None = None
    try:
        adapter = SYSTEMS[system](directory, sync)
        readback = adapter.readback()
        try:
            barrier.wait(timeout=120)
        except threading.BrokenBarrierError:
            return
        start, cpu = time.monotonic(), time.process_time()
        out = role(adapter, *args)
        out.update(start=start, end=out.get("end", time.monotonic()), sync=readback)
        out["cpu"] = time.process_time() - cpu
        results.put((index, out))
    except BaseException as error:
        barrier.abort()  # the others, and the parent, stop waiting for this one
        results.put((index, {"fatal": f"{type(error).__name__}: {error}"}))
    finally:
        if adapter is not None:
            try:
                adapter.close()
            except Exception:
                pass


def run_roles(
    system: str,
    directory: Path,
    sync: str,
    roles: list[tuple[Callable[..., dict[str, Any]], tuple[Any, ...]]],
    *,
    producers: int = 0,
    stop: Any = None,
    hook: Callable[[list[int]], None] | None = None,
    timeout: float = 300,
) -> list[dict[str, Any]]:
    """Start one process per role, release them together, collect their results.

    With ``stop``: set once the first ``producers`` roles have reported, so consumers
    may leave on an empty queue. ``hook`` runs in the parent once all are started.
    """
    # Create the schema once, so processes opening together do not race to create it.
    SYSTEMS[system](directory, sync).close()
    barrier = CTX.Barrier(len(roles) + 1)
    results = CTX.Queue()
    procs = [
        CTX.Process(target=_child, args=(system, directory, sync, role, args, barrier, results, i))
        for i, (role, args) in enumerate(roles)
    ]
    for p in procs:
        p.start()
    collected: dict[int, dict[str, Any]] = {}
    try:
        barrier.wait(timeout=120)
        if hook is not None:
            hook([p.pid for p in procs if p.pid is not None])
        if stop is not None and producers == 0:
            stop.set()
        deadline = time.monotonic() + timeout
        while len(collected) < len(procs) and time.monotonic() < deadline:
            try:
                index, out = results.get(timeout=0.5)
            except Exception:
                if all(not p.is_alive() for p in procs):
                    break
                continue
            collected[index] = out
            if "fatal" in out:
                break
            if stop is not None and all(i in collected for i in range(producers)):
                stop.set()
    except threading.BrokenBarrierError:
        pass
    finally:
        if stop is not None:
            stop.set()
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()
    while not results.empty() and len(collected) < len(procs):
        index, out = results.get()
        collected[index] = out
    for out in collected.values():
        if "fatal" in out:
            raise RuntimeError(out["fatal"])
    if len(collected) < len(procs):
        raise RuntimeError("a process gave no result (timed out or died)")
    return [collected[i] for i in range(len(procs))]


def prefill(system: str, directory: Path, n: int, tag: str = "job") -> None:
    """Fill the queue before a drain. Setup, not measured: run at synchronous=OFF."""
    adapter = SYSTEMS[system](directory, "OFF")
    try:
        payloads = [f"{tag}-{i}" for i in range(n)]
        if adapter.has_batch_enqueue:
            adapter.put_many(payloads)
        else:
            for p in payloads:
                adapter.put(p)
    finally:
        adapter.close()


# ------------------------------------------------------------------ roles (run in children)


def role_put(adapter: Adapter, payloads: list[str]) -> dict[str, Any]:
    for p in payloads:
        adapter.put(p)
    return {"count": len(payloads)}


def role_put_many(adapter: Adapter, payloads: list[str], chunk: int) -> dict[str, Any]:
    for start in range(0, len(payloads), chunk):
        adapter.put_many(payloads[start : start + chunk])
    return {"count": len(payloads)}


def role_put_timed(adapter: Adapter, payloads: list[str], rate: float | None) -> dict[str, Any]:
    """Produce, recording when each put returned; paced at ``rate`` jobs/s if given."""
    put_at: dict[str, float] = {}
    start = time.monotonic()
    for i, p in enumerate(payloads):
        if rate:
            pause = start + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        adapter.put(p)
        put_at[p] = time.monotonic()
    return {"put_at": put_at}


def _consume(
    adapter: Adapter, stop: Any, wait: float, seconds: float | None = None
) -> dict[str, Any]:
    """Take and acknowledge until the queue is empty (and ``stop`` is set, if given), or
    for at most ``seconds`` (between jobs: none is left taken and unacknowledged)."""
    done: list[str] = []
    taken_at: dict[str, float] = {}
    errors = 0
    first_error = None
    end = time.monotonic()
    cut_off = math.inf if seconds is None else end + seconds
    while time.monotonic() < cut_off:
        try:
            item = adapter.take(wait)
            if item is None:
                if stop is None or stop.is_set():
                    break
                continue
            key, payload = item
            taken_at[payload] = time.monotonic()
            adapter.ack(key)
            done.append(payload)
            end = time.monotonic()
        except Exception as error:  # counted and reported, e.g. "database is locked"
            errors += 1
            first_error = first_error or f"{type(error).__name__}: {error}"
            if errors >= ERROR_LIMIT:
                break
            time.sleep(0.001)
    if done:
        adapter.flush()  # outcomes still buffered are part of the measured work
        end = time.monotonic()
    return {"done": done, "taken_at": taken_at, "errors": errors, "first_error": first_error,
            "end": end}  # fmt: skip


def role_drain(adapter: Adapter, seconds: float | None = None) -> dict[str, Any]:
    return _consume(adapter, None, 0.0, seconds)


def role_consume_until(adapter: Adapter, stop: Any, wait: float) -> dict[str, Any]:
    return _consume(adapter, stop, wait)


# ------------------------------------------------------------------ workloads


def fresh_dir(root: Path, name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))


def enqueue_single(system: str, root: Path, sync: str, n: int) -> Result:
    directory = fresh_dir(root, f"w1s-{system}")
    payloads = [f"job-{i}" for i in range(n)]
    [out] = run_roles(system, directory, sync, [(role_put, (payloads,))])
    return Result(rate=n / (out["end"] - out["start"]), n=n, sync=out["sync"])


def enqueue_interleaved(systems: list[str], root: Path, sync: str, n: int) -> dict[str, Result]:
    """One job per call for every system in one process, alternating blocks of 50 jobs in
    the given order, so a slow spell of the shared disk costs every system the same.
    Afterwards each system's job count is read back: losses and duplicates by count."""
    out = CTX.Queue()
    proc = CTX.Process(target=_interleaved_child, args=(systems, root, sync, n, out))
    proc.start()
    result = out.get(timeout=600)
    proc.join(timeout=30)
    if "fatal" in result:
        raise RuntimeError(result["fatal"])
    return {
        name: Result(
            rate=n / spent, n=n, sync=result["sync"][name],
            duplicates=max(0, result["count"][name] - n), losses=max(0, n - result["count"][name]),
        )
        for name, spent in result["spent"].items()
    }  # fmt: skip


def _interleaved_child(systems: list[str], root: Path, sync: str, n: int, out: Any) -> None:
    adapters: dict[str, Adapter] = {}
    try:
        for name in systems:
            adapters[name] = SYSTEMS[name](fresh_dir(root, f"w1-{name}"), sync)
        spent = dict.fromkeys(systems, 0.0)
        for block in range(0, n, 50):
            for name, adapter in adapters.items():
                t = time.perf_counter()
                for i in range(block, min(n, block + 50)):
                    adapter.put(f"job-{i}")
                spent[name] += time.perf_counter() - t
        out.put({
            "spent": spent,
            "sync": {k: a.readback() for k, a in adapters.items()},
            "count": {k: a.count() for k, a in adapters.items()},
        })  # fmt: skip
    except BaseException as error:
        out.put({"fatal": f"{type(error).__name__}: {error}"})
    finally:
        for adapter in adapters.values():
            adapter.close()


def enqueue_batch(system: str, root: Path, sync: str, n: int, chunk: int = 1000) -> Result:
    directory = fresh_dir(root, f"w1b-{system}")
    payloads = [f"job-{i}" for i in range(n)]
    [out] = run_roles(system, directory, sync, [(role_put_many, (payloads, chunk))])
    held = _held(system, directory)
    return Result(
        rate=n / (out["end"] - out["start"]), n=n, sync=out["sync"], cpu_rate=n / out["cpu"],
        duplicates=max(0, held - n), losses=max(0, n - held), errors=0,
    )  # fmt: skip


def _held(system: str, directory: Path) -> int:
    adapter = SYSTEMS[system](directory, "NORMAL")
    try:
        return adapter.count()
    finally:
        adapter.close()


def _tally(
    n: int, outs: list[dict[str, Any]], tag: str = "job"
) -> tuple[int, int, int, str | None]:
    counts = Counter(p for o in outs for p in o.get("done", []))
    expected = {f"{tag}-{i}" for i in range(n)}
    duplicates = sum(c - 1 for c in counts.values() if c > 1)
    losses = len(expected - counts.keys())
    errors = sum(o.get("errors", 0) for o in outs)
    first = next((o["first_error"] for o in outs if o.get("first_error")), None)
    return duplicates, losses, errors, first


def drain(
    system: str, root: Path, sync: str, n: int, consumers: int, seconds: float | None = None
) -> Result:
    """Drain ``n`` prefilled jobs. ``seconds``: a peer's consumers stop after that long
    (a slow peer would otherwise take minutes a round); what they left is counted in
    the queue, so a job neither done nor still there is a loss all the same."""
    directory = fresh_dir(root, f"w-drain{consumers}-{system}")
    prefill(system, directory, n)
    outs = run_roles(system, directory, sync, [(role_drain, (seconds,))] * consumers)
    duplicates, losses, errors, first = _tally(n, outs)
    span = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    completed = sum(len(o["done"]) for o in outs)
    note = ""
    if seconds is not None and losses:
        left = _held(system, directory)  # a peer's count is of the jobs still queued
        unique = len({p for o in outs for p in o["done"]})
        note = f"time cap: {unique:,} of {n:,} done in {seconds:g} s" if unique < n else ""
        losses = max(0, n - unique - left)
    return Result(
        rate=completed / span, n=n, duplicates=duplicates, losses=losses, errors=errors,
        first_error=first, sync=outs[0]["sync"], capped=note,
    )  # fmt: skip


def _waits(outs: list[dict[str, Any]]) -> list[float]:
    """Milliseconds from each put returning to its job being taken by a consumer."""
    put_at: dict[str, float] = {}
    taken_at: dict[str, float] = {}
    for o in outs:
        put_at.update(o.get("put_at", {}))
        taken_at.update(o.get("taken_at", {}))
    return sorted(max(0.0, taken_at[p] - t) * 1000 for p, t in put_at.items() if p in taken_at)


def mixed(
    system: str, root: Path, sync: str, n: int, producers: int = 2, consumers: int = 2
) -> Result:
    directory = fresh_dir(root, f"w4-{system}")
    stop = CTX.Event()
    share = [[f"job-{i}" for i in range(k, n, producers)] for k in range(producers)]
    roles: list[tuple[Callable[..., dict[str, Any]], tuple[Any, ...]]] = [
        (role_put_timed, (share[k], None)) for k in range(producers)
    ] + [(role_consume_until, (stop, 0.05))] * consumers
    # Consumers stop once the producers are done and the queue is empty.
    outs = run_roles(system, directory, sync, roles, producers=producers, stop=stop)
    duplicates, losses, errors, first = _tally(n, outs)
    waits = _waits(outs)
    p50, p99 = _percentiles(waits)
    span = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    completed = sum(len(o.get("done", [])) for o in outs)
    return Result(
        rate=completed / span, n=n, duplicates=duplicates, losses=losses, errors=errors,
        first_error=first, p50_ms=p50, p99_ms=p99, sync=outs[0]["sync"], waits_ms=waits,
    )  # fmt: skip


def _cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` (ns precision from schedstat)."""
    total = 0.0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0]) / 1e9
    except OSError:
        pass
    return total


def light_load(
    system: str, root: Path, sync: str, rate: float, seconds: float, idle_seconds: float,
    consumers: int = 2,
) -> Result:  # fmt: skip
    """Idle consumers first (their CPU measured), then a paced producer at ``rate``."""
    directory = fresh_dir(root, f"w5-{system}")
    stop = CTX.Event()
    go = CTX.Event()
    n = int(rate * seconds)
    payloads = [f"job-{i}" for i in range(n)]
    roles: list[tuple[Callable[..., dict[str, Any]], tuple[Any, ...]]] = [
        (role_wait_then_put, (go, payloads, rate))
    ] + [(role_consume_until, (stop, 1.0))] * consumers
    idle: list[float] = []

    def measure_idle(pids: list[int]) -> None:
        consumer_pids = pids[1:]
        time.sleep(0.3)  # let them settle into their wait
        before = [_cpu_seconds(p) for p in consumer_pids]
        t0 = time.monotonic()
        time.sleep(idle_seconds)
        elapsed = time.monotonic() - t0
        after = [_cpu_seconds(p) for p in consumer_pids]
        idle.extend((a - b) / elapsed for a, b in zip(after, before, strict=True))
        go.set()

    outs = run_roles(system, directory, sync, roles, producers=1, stop=stop, hook=measure_idle)
    duplicates, losses, errors, first = _tally(n, outs)
    waits = _waits(outs)
    p50, p99 = _percentiles(waits)
    return Result(
        rate=rate, n=n, duplicates=duplicates, losses=losses, errors=errors, first_error=first,
        p50_ms=p50, p99_ms=p99, idle_cpu=max(idle) if idle else None, sync=outs[0]["sync"],
        waits_ms=waits,
    )  # fmt: skip


def role_wait_then_put(
    adapter: Adapter, go: Any, payloads: list[str], rate: float
) -> dict[str, Any]:
    go.wait(timeout=120)
    return role_put_timed(adapter, payloads, rate)


# ------------------------------------------------------------------ scale (pq only)


def _scale_child(path: str, sync: str, done: int, pending: int, samples: int, out: Any) -> None:
    try:
        from pqcore import QueueSettings, open_queue
        from pqcore.testing import seed_finished_jobs

        queue = open_queue(path, settings=QueueSettings(db=path, sqlite_synchronous=sync))
        built = time.monotonic()
        seed_finished_jobs(queue, done)
        queue.enqueue_many([f"job-{i}" for i in range(pending)])
        built = time.monotonic() - built
        claims, stats = [], []
        for _ in range(samples):
            t = time.perf_counter()
            [job] = queue.claim("scale", limit=1)
            claims.append(time.perf_counter() - t)
            queue.complete(job.id, job.lease_token or "")
            queue.enqueue(job.data)  # keep the pending count steady
            t = time.perf_counter()
            queue.stats()
            stats.append(time.perf_counter() - t)
        total = queue.stats().total
        queue.close()
        out.put({"claim": claims, "stats": stats, "build_s": built, "total": total})
    except BaseException as error:
        out.put({"fatal": f"{type(error).__name__}: {error}"})


def scale(
    root: Path, sync: str, jobs: int, pending: int = 300, samples: int = 200
) -> dict[str, Any]:
    """Claim and stats latency with ``jobs`` jobs in the table, all but ``pending`` done."""
    directory = fresh_dir(root, f"w6-{jobs}")
    out = CTX.Queue()
    proc = CTX.Process(
        target=_scale_child,
        args=(str(directory / "pq.db"), sync, jobs - pending, pending, samples, out),
    )
    proc.start()
    result = out.get(timeout=600)
    proc.join(timeout=30)
    if "fatal" in result:
        raise RuntimeError(result["fatal"])
    return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]
