"""The power-loss test's own processes: they drive the queue through its public surfaces
and record every operation that was *acknowledged* (the call returned).

``python -m tests.powerloss.harness ROLE --db DB --record FILE`` with ROLE one of

* ``enqueuer``: enqueues jobs into the queue ``h`` (one at a time or a few in one
  ``enqueue_many``); records the ids each call returned.
* ``consumer``: claims jobs of ``h`` with ``claim`` and finishes them with ``complete``;
  records each claim (id, attempt) and each completion that returned.
* ``observer``: reads back which jobs of the real consumers (queue ``default``) are
  ``done`` and records each one the first time it sees it.
* ``operator``: cancels a pending ``h`` job and resubmits it with the ``pq`` command,
  recording each command that exited 0; at start it resubmits the jobs it had
  cancelled before a cut.

The record file lies outside the simulated disk (the real disk does not lose power);
each record is one ``write`` of one JSON line, so a SIGKILL leaves whole lines only.
Storage errors (the disk died under us at a cut) are not acknowledgements: the role
backs off and tries again until it is killed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pqcore import (
    EnqueueRequest,
    JobFilter,
    JobState,
    LeaseLost,
    PQError,
    QueueSettings,
    StorageError,
    open_queue,
)

HARNESS_QUEUE = "h"
OPERATOR = "powerloss-operator"
MAX_ATTEMPTS = 1000  # a job caught by many cuts keeps being retried, never dead-lettered


class Recorder:
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def __call__(self, **record: Any) -> None:
        os.write(self.fd, (json.dumps(record) + "\n").encode())


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every whole line of a record file (a missing file has none)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # cannot happen with one write per line; tolerated all the same
    return records


def enqueuer(queue: Any, record: Recorder, rng: random.Random) -> None:
    n = 0
    while True:
        batch = 1 if rng.random() < 0.75 else rng.randint(2, 5)
        delay = rng.uniform(1.5, 4.0) if rng.random() < 0.2 else 0.0  # pending a while
        items = [
            EnqueueRequest(
                f"h-{os.getpid()}-{n + i}", HARNESS_QUEUE, delay=delay, max_attempts=MAX_ATTEMPTS
            )
            for i in range(batch)
        ]
        try:
            jobs = queue.enqueue_many(items, actor="powerloss-enqueuer")
        except StorageError:
            time.sleep(0.05)
            continue
        record(op="enqueue", ids=[j.id for j in jobs], data=[j.data for j in jobs])
        n += batch
        time.sleep(rng.uniform(0, 0.01))


def consumer(queue: Any, record: Recorder, rng: random.Random) -> None:
    consumer_id = f"powerloss-consumer-{os.getpid()}"
    while True:
        try:
            claimed = queue.claim(consumer_id, queues=[HARNESS_QUEUE], lease_seconds=2.0)
        except StorageError:
            time.sleep(0.05)
            continue
        if not claimed:
            time.sleep(0.01)
            continue
        job = claimed[0]
        record(op="claim", id=job.id, attempt=job.attempts, actor=consumer_id)
        time.sleep(rng.uniform(0, 0.005))
        try:
            queue.complete(job.id, job.lease_token)
        except LeaseLost:
            continue  # rescued or cancelled meanwhile: not ours to report
        except StorageError:
            time.sleep(0.05)
            continue
        record(op="complete", id=job.id, data=job.data)


def observer(queue: Any, record: Recorder, rng: random.Random) -> None:
    seen: set[int] = set()
    done = JobFilter(statuses=(JobState.DONE,), queue="default")
    while True:
        try:
            found: list[tuple[int, str]] = []
            page = queue.list_jobs(done, limit=1000)
            while True:
                found += [(j.id, j.data) for j in page.jobs]
                if page.next_cursor is None or page.jobs[-1].id in seen:
                    break
                page = queue.list_jobs(done, limit=1000, before_id=page.next_cursor)
        except StorageError:
            time.sleep(0.05)
            continue
        for job_id, data in found:
            if job_id not in seen:
                seen.add(job_id)
                record(op="done_seen", id=job_id, data=data)
        time.sleep(0.05)


def operator(queue: Any, record: Recorder, rng: random.Random, db: str, once: bool) -> None:
    def pq(*args: str) -> bool:
        command = [str(Path(sys.executable).parent / "pq"), "--db", db, *args]
        done = subprocess.run(command, capture_output=True, timeout=60)
        return done.returncode == 0

    cancelled = JobFilter(statuses=(JobState.CANCELLED,), queue=HARNESS_QUEUE)
    pending = JobFilter(statuses=(JobState.PENDING,), queue=HARNESS_QUEUE)
    while True:  # jobs a cut left cancelled go back first: every job must end done
        try:
            left = queue.list_jobs(cancelled, limit=1000).jobs
            break
        except StorageError:
            time.sleep(0.05)
    for job in left:
        if pq("retry", str(job.id), "--actor", OPERATOR):
            record(op="resubmit", id=job.id)
    if once:
        return
    while True:
        time.sleep(rng.uniform(0.05, 0.3))
        try:
            jobs = queue.list_jobs(pending, limit=20).jobs
        except StorageError:
            continue
        if not jobs:
            continue
        job = rng.choice(jobs)
        if not pq("cancel", str(job.id), "--actor", OPERATOR, "--reason", "power-loss test"):
            continue  # claimed meanwhile, or the disk died
        record(op="cancel", id=job.id)
        if pq("retry", str(job.id), "--actor", OPERATOR):
            record(op="resubmit", id=job.id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.powerloss.harness")
    parser.add_argument("role", choices=["enqueuer", "consumer", "observer", "operator"])
    parser.add_argument("--db", required=True)
    parser.add_argument("--record", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--once", action="store_true", help="operator: resubmit, then exit")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    record = Recorder(args.record)
    settings = QueueSettings.from_env(
        db=args.db, backoff_base_seconds=0.05, backoff_cap_seconds=0.5
    )
    while True:  # the disk may be dead already (a cut before we got going)
        try:
            queue = open_queue(args.db, settings=settings)
            break
        except PQError:
            time.sleep(0.1)
    print(f"{args.role} ready", flush=True)
    if args.role == "operator":
        operator(queue, record, rng, args.db, args.once)
    else:
        {"enqueuer": enqueuer, "consumer": consumer, "observer": observer}[args.role](
            queue, record, rng
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
