"""Child processes for the integration tests: ``python -m tests.integration.worker ROLE``.

Each role talks to the parent through stdout lines (flushed one by one, printed only
after the call they report has returned, i.e. committed) and, where it waits for the
parent, through stdin. Only the public pqcore interface is used, except ``crash-in-write``
which holds a SQLite write transaction open on purpose.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from pqcore import EnqueueRequest, LeaseLost, Queue, QueueSettings, open_queue


def say(*words: object) -> None:
    print(*words, flush=True)


def open_from(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    settings = QueueSettings.from_env(db=args.url)
    return open_queue(args.url, settings=settings)


def drain(args: argparse.Namespace) -> None:
    """Claim one job at a time and complete it until nothing is left to do.

    Every ``slow_every``-th job is held past its lease first, so the parent's rescuer
    takes it away and this process's late complete must be refused.
    """
    queue = open_from(args)
    done: list[int] = []
    lost: list[int] = []
    handled = 0
    deadline = time.monotonic() + args.deadline
    while time.monotonic() < deadline:
        claimed = queue.claim(args.consumer, limit=1, lease_seconds=args.lease)
        if not claimed:
            counts = queue.stats().counts
            if counts["pending"] + counts["processing"] + counts["failed"] == 0:
                break
            queue.wait_for_jobs(0.1)
            continue
        job = claimed[0]
        handled += 1
        if args.slow_every and handled % args.slow_every == 0:
            time.sleep(args.lease * 2)  # overstay: the rescuer takes the job away
        try:
            queue.complete(job.id, job.lease_token or "")
            done.append(job.id)
        except LeaseLost:
            lost.append(job.id)
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump({"consumer": args.consumer, "done": done, "lost": lost}, handle)
    queue.close()


def hold(args: argparse.Namespace) -> None:
    """Claim one job, report it, wait for the parent's word, then try to complete it."""
    queue = open_from(args)
    [job] = queue.claim(args.consumer, limit=1, lease_seconds=args.lease)
    say("claimed", job.id, job.lease_token)
    sys.stdin.readline()
    try:
        queue.complete(job.id, job.lease_token or "")
        say("completed", job.id)
    except LeaseLost:
        say("lease-lost", job.id)
    queue.close()


def crash_in_write(args: argparse.Namespace) -> None:
    """Insert many jobs inside one write transaction, tell the parent, and block forever.

    The rows are large enough to spill out of SQLite's page cache into the WAL, so the
    file really holds uncommitted frames when the parent SIGKILLs this process.
    """
    from pqcore.validation import enqueue_values

    queue = open_from(args)
    assert isinstance(queue, Queue) and queue.backend == "sqlite"
    payload = "u" * 900

    def body(session):  # type: ignore[no-untyped-def]
        for i in range(args.rows):
            request = EnqueueRequest(f"uncommitted-{i}-{payload}")
            values = enqueue_values(request, queue.settings)
            session.run("job_insert", {**values, "now": time.time(), "actor": "crash-test"})
        wal = os.path.getsize(queue.driver.path + "-wal")  # type: ignore[attr-defined]
        say("inside-transaction", wal)
        while True:
            time.sleep(60)

    queue.driver.write(body)


def churn(args: argparse.Namespace) -> None:
    """Enqueue batches, claim and complete, reporting each call after it returned."""
    queue = open_from(args)
    say("ready")
    batch = 0
    while True:
        batch += 1
        tag = f"{args.tag}-b{batch}-"
        say("intent", tag)
        jobs = queue.enqueue_many(EnqueueRequest(f"{tag}{i}") for i in range(args.batch))
        say("enqueued", tag, *[j.id for j in jobs])
        for job in queue.claim(args.consumer, limit=2, lease_seconds=args.lease):
            queue.complete(job.id, job.lease_token or "")
            say("completed", job.id)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="role", required=True)
    p = sub.add_parser("drain")
    p.add_argument("--out", required=True)
    p.add_argument("--slow-every", type=int, default=0)
    p.add_argument("--deadline", type=float, default=90)
    p = sub.add_parser("hold")
    p = sub.add_parser("crash-in-write")
    p.add_argument("--rows", type=int, default=3000)
    p = sub.add_parser("churn")
    p.add_argument("--tag", required=True)
    p.add_argument("--batch", type=int, default=5)
    for p in sub.choices.values():
        p.add_argument("--url", required=True)
        p.add_argument("--consumer", default=f"test-{os.getpid()}")
        p.add_argument("--lease", type=float, default=30.0)
    args = parser.parse_args()
    {"drain": drain, "hold": hold, "crash-in-write": crash_in_write, "churn": churn}[args.role](
        args
    )


if __name__ == "__main__":
    main()
