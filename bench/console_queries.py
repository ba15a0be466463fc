"""Times every data query the consoles make, against a queue of 1,000,000 jobs.

    .venv/bin/python -m bench.console_queries              # seeds var/bench/console-1m.db once
    .venv/bin/python -m bench.console_queries --jobs 100000 --db /tmp/q.db --reseed

The database is filled through pqcore's public API only (enqueue_many, then
settle_and_claim in batches of 10,000), on a simulated clock that spreads the jobs
over a week, so the history looks like a real queue's: mostly done, some failed,
a dead-letter queue, a backlog of pending jobs and a few in processing. Seeding is
done once and kept; each run then times the console's queries on a warm cache
(median of a few repetitions) and prints one line per query.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pqcore import (
    EnqueueRequest,
    JobCursor,
    JobFilter,
    JobOrder,
    JobState,
    Outcome,
    QueueSettings,
    Transition,
    open_queue,
)

BATCH = 10_000
WEEK = 7 * 86_400.0
QUEUES = ("default", "emails", "reports")
REASONS = (
    "TimeoutError: upstream did not answer within 30s",
    "FileNotFoundError: [Errno 2] No such file or directory",
    "ValueError: malformed record on line 3",
    "PermissionError: [Errno 13] Permission denied",
    "ConnectionResetError: [Errno 104] Connection reset by peer",
)


class SimulatedClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def seed(path: Path, jobs: int, rng: random.Random) -> float:
    """Fill ``path`` with ``jobs`` jobs; returns the simulated 'now' at the end."""
    end = time.time()
    clock = SimulatedClock(end - WEEK)
    settings = QueueSettings(
        db=str(path),
        sqlite_synchronous="OFF",
        max_attempts=3,
        backoff_base_seconds=1.0,
        backoff_cap_seconds=60.0,
    )
    queue = open_queue(str(path), settings=settings, clock=clock)
    step = WEEK / max(1, jobs // BATCH)
    started = time.monotonic()
    made = 0
    try:
        while made < jobs:
            n = min(BATCH, jobs - made)
            queue.enqueue_many(
                EnqueueRequest(f"jobs/{made + i:07d}.txt", queue=QUEUES[(made + i) % 3])
                for i in range(n)
            )
            made += n
            last_batch = made >= jobs
            # Leave a backlog in the last batch: 4% stays pending, 0.5% in processing.
            take = int(n * 0.955) if last_batch else BATCH
            claimed = queue.claim("bench-consumer", limit=take, lease_seconds=3600)
            clock.now += step / 2
            outcomes = []
            hold = int(n * 0.005) if last_batch else 0
            for job in claimed[hold:]:
                roll = rng.random()
                token = job.lease_token or ""
                if roll < 0.93:
                    outcomes.append(Outcome(job.id, token, "done"))
                elif roll < 0.97:
                    outcomes.append(Outcome(job.id, token, "failed", rng.choice(REASONS), True))
                else:
                    reason = rng.choice(REASONS)
                    outcomes.append(Outcome(job.id, token, "failed", reason, False))
            queue.settle_and_claim(outcomes, "bench-consumer", limit=0)
            clock.now += step / 2
            if not last_batch:
                queue.schedule_retries(limit=BATCH)  # retried in the next batch's claim
            print(
                f"\rseeded {made:>9,} jobs  {time.monotonic() - started:6.1f}s",
                end="",
                file=sys.stderr,
                flush=True,
            )
        # A few operator cancels, so every state is present.
        queue.bulk_action(
            Transition.CANCEL,
            JobFilter(statuses=(JobState.FAILED,)),
            actor="bench",
            limit=max(1, jobs // 200),
        )
    finally:
        queue.close()
    print(f"\nseeded {jobs:,} jobs in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return clock.now


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    fn()  # warm the page cache and the statement cache
    runs, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), result


def measure(path: Path, repeat: int) -> list[tuple[str, float, str]]:
    queue = open_queue(str(path), settings=QueueSettings(db=str(path)), create=False)
    rows: list[tuple[str, float, str]] = []

    def run(name: str, fn: Callable[[], Any], describe: Callable[[Any], str] = str) -> Any:
        seconds, result = timed(fn, repeat)
        rows.append((name, seconds, describe(result)))
        print(f"{name:<44} {seconds * 1000:9.1f} ms   {describe(result)}", flush=True)
        return result

    def size(page: Any) -> str:
        return f"{len(page.jobs)} jobs"

    try:
        total = queue.stats().total
        newest = queue.list_jobs(limit=1).jobs[0]
        now = newest.created_at
        print(f"{path}: {total:,} jobs", flush=True)
        run("stats (counts, oldest pending, stalled)", queue.stats, lambda s: f"total {s.total}")
        run("count_jobs(all)", queue.count_jobs)
        run("queue_names", queue.queue_names)
        run("list_jobs first page (50, newest)", lambda: queue.list_jobs(limit=50), size)
        run(
            "list_jobs first page (50, oldest)",
            lambda: queue.list_jobs(limit=50, oldest_first=True),
            size,
        )
        dead = JobFilter(statuses=(JobState.PERMANENTLY_FAILED,))
        run("list_jobs status=dead first page", lambda: queue.list_jobs(dead, limit=50), size)
        run(
            "list_jobs status=dead,queue=emails",
            lambda: queue.list_jobs(JobFilter((JobState.PERMANENTLY_FAILED,), "emails")),
            size,
        )
        two = JobFilter(statuses=(JobState.FAILED, JobState.PERMANENTLY_FAILED))
        run("list_jobs status=failed|dead", lambda: queue.list_jobs(two, limit=50), size)
        deep_cursor = newest.id - total // 2
        run(
            "list_jobs deep page (keyset, middle)",
            lambda: queue.list_jobs(limit=50, before_id=deep_cursor),
            size,
        )
        run(
            "list_jobs deep page (keyset, oldest end)",
            lambda: queue.list_jobs(limit=50, before_id=60),
            size,
        )
        dead_deep = newest.id - total // 2
        run(
            "list_jobs status=dead deep page",
            lambda: queue.list_jobs(dead, limit=50, before_id=dead_deep),
            size,
        )
        last_hour = JobFilter(created_after=now - 3600)
        run("list_jobs created in last hour", lambda: queue.list_jobs(last_hour), size)
        day3 = JobFilter(created_after=now - 3 * 86_400, created_before=now - 3 * 86_400 + 6 * 3600)
        run("list_jobs created in 6 hours 3 days ago", lambda: queue.list_jobs(day3), size)
        run(
            "list_jobs created 3 days ago, oldest first",
            lambda: queue.list_jobs(day3, oldest_first=True),
            size,
        )
        run("count_jobs status=dead", lambda: queue.count_jobs(dead))
        run("count_jobs created in last hour", lambda: queue.count_jobs(last_hour))
        run("count_jobs created in 6 hours 3 days ago", lambda: queue.count_jobs(day3))
        common = JobFilter(text="Timeout")
        run("text search 'Timeout' (common) first page", lambda: queue.list_jobs(common), size)
        rare = JobFilter(text=f"{total // 2:07d}")
        run("text search one payload (rare) first page", lambda: queue.list_jobs(rare), size)
        absent = JobFilter(text="no-such-text")
        run("text search no match (full scan)", lambda: queue.list_jobs(absent), size)
        absent_dead = JobFilter(statuses=(JobState.PERMANENTLY_FAILED,), text="no-such-text")
        run("text search no match within status=dead", lambda: queue.list_jobs(absent_dead), size)
        run("count_jobs text 'Timeout'", lambda: queue.count_jobs(common))
        run(
            "throughput last hour (per minute)",
            lambda: queue.throughput(now - 3600),
            lambda b: f"{len(b)} buckets",
        )
        run(
            "throughput last 24h (per 15 min)",
            lambda: queue.throughput(now - 86_400, bucket_seconds=900),
            lambda b: f"{len(b)} buckets",
        )
        run(
            "failure_reasons (top 10 of newest 10k)",
            queue.failure_reasons,
            lambda r: f"{len(r)} reasons",
        )
        run("attempts_histogram (newest 10k tried)", queue.attempts_histogram)
        run(
            "processing_seconds (newest 10k done)",
            queue.processing_seconds,
            lambda r: f"{len(r)} durations",
        )
        run(
            "failure_groups (top 10, newest 10k of each)",
            queue.failure_groups,
            lambda r: f"{len(r)} groups",
        )
        group = queue.failure_groups(limit=1)[0].pattern
        in_group = JobFilter(statuses=(JobState.PERMANENTLY_FAILED,), error_group=group)
        run("list_jobs of one failure group", lambda: queue.list_jobs(in_group), size)
        run("count_jobs of one failure group", lambda: queue.count_jobs(in_group))
        run(
            "queue_throughput last 15 min",
            lambda: queue.queue_throughput(now - 900),
            lambda r: f"{len(r)} queues",
        )
        for order in JobOrder:
            if order is JobOrder.CREATED:
                continue
            first = run(
                f"page_jobs by {order.value} first page",
                lambda order=order: queue.page_jobs(order=order),
                size,
            )
            last = queue.page_jobs(order=order, descending=False, limit=1).jobs[0]
            deep = JobCursor(float(getattr(last, order.value)), last.id + 50)
            run(
                f"page_jobs by {order.value} page ~20,000",
                lambda order=order, deep=deep: queue.page_jobs(order=order, after=deep),
                size,
            )
            run(
                f"page_jobs by {order.value} previous page",
                lambda order=order, first=first: queue.page_jobs(order=order, before=first.next),
                size,
            )
            run(
                f"page_jobs by {order.value}, status=done",
                lambda order=order: queue.page_jobs(
                    JobFilter(statuses=(JobState.DONE,)), order=order
                ),
                size,
            )
            run(
                f"page_jobs by {order.value}, status=dead",
                lambda order=order: queue.page_jobs(dead, order=order),
                size,
            )
        run("stalled_jobs (50)", queue.stalled_jobs, lambda r: f"{len(r)} jobs")
        run("consumers", queue.consumers, lambda r: f"{len(r)} consumers")
        some = queue.list_jobs(dead, limit=1).jobs[0].id
        run(
            "get + history of one job",
            lambda: (queue.get(some), queue.history(some)),
            lambda r: f"{len(r[1])} events",
        )
    finally:
        queue.close()
    return rows


def measure_pages(path: Path) -> None:
    """Whole console pages rendered by Streamlit's AppTest against the same database."""
    import os
    import tempfile

    from streamlit.testing.v1 import AppTest

    from services.consoles.auth import hash_password

    apps = Path(__file__).resolve().parent.parent / "services" / "consoles"
    with tempfile.TemporaryDirectory() as scratch:
        users = Path(scratch) / "users.json"
        users.write_text(
            json.dumps({"bench": {"role": "admin", "password_hash": hash_password("bench")}})
        )
        os.environ.update(PQ_CONSOLE_USERS=str(users), PQ_DB=str(path.resolve()))

        def opened(app: str) -> AppTest:
            at = AppTest.from_file(str(apps / f"{app}_app.py"), default_timeout=120).run()
            at.text_input(key="login_user").input("bench")
            at.text_input(key="login_password").input("bench")
            return at.button[0].click().run()

        def page(name: str, step: Callable[[], Any]) -> None:
            t0 = time.perf_counter()
            step()
            print(f"page: {name:<38} {(time.perf_counter() - t0) * 1000:9.1f} ms", flush=True)

        at = opened("admin")
        page("admin jobs (rerun)", at.run)
        page("admin jobs, next page", at.button(key="jobs_next").click().run)
        page(
            "admin jobs, status=dead",
            at.multiselect(key="jobs_status").set_value([JobState.PERMANENTLY_FAILED]).run,
        )
        page("admin jobs, + text 'Timeout'", at.text_input(key="jobs_text").input("Timeout").run)
        at.text_input(key="jobs_text").input("").run()
        at.multiselect(key="jobs_status").set_value([]).run()
        for order in (JobOrder.PRIORITY, JobOrder.UPDATED_AT, JobOrder.ATTEMPTS, JobOrder.RUN_AT):
            page(f"admin jobs, sorted by {order.value}", at.selectbox(key="jobs_sort")
                 .set_value(order).run)  # fmt: skip
            page(f"admin jobs, sorted by {order.value}, next", at.button(key="jobs_next")
                 .click().run)  # fmt: skip
        page("admin jobs, last hour", at.selectbox(key="jobs_time").set_value("last hour").run)
        at.selectbox(key="jobs_time").set_value("any time").run()
        some = at.dataframe[0].value["id"].iloc[0]
        at.query_params["job"] = str(some)
        page("admin job page", at.run)
        at.query_params.pop("job")
        page("admin dead letter", at.switch_page("views/admin_dead_letter.py").run)
        page("admin queues", at.switch_page("views/queues.py").run)
        page("admin statistics (last hour)", at.switch_page("views/admin_statistics.py").run)
        page(
            "admin statistics (last 24 hours)",
            at.selectbox(key="stats_window").set_value("last 24 hours").run,
        )
        ops = opened("ops")
        page("ops live (one refresh)", ops.run)
        page("ops queues", ops.switch_page("views/queues.py").run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--db", default="var/bench/console-1m.db")
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--reseed", action="store_true", help="delete and fill it again")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", metavar="FILE", help="also write the timings here")
    parser.add_argument("--pages", action="store_true", help="also time whole console pages")
    args = parser.parse_args(argv)
    path = Path(args.db)
    if args.reseed:
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        seed(path, args.jobs, random.Random(42))
    rows = measure(path, args.repeat)
    if args.pages:
        measure_pages(path)
    slowest = max(rows, key=lambda r: r[1])
    print(f"slowest: {slowest[0]} at {slowest[1] * 1000:.1f} ms")
    if args.json:
        Path(args.json).write_text(
            json.dumps([{"query": n, "seconds": s, "result": d} for n, s, d in rows], indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
