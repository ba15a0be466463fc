"""A small queue with every state present, for the console tests (AppTest and browser)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pqcore import EnqueueRequest, JobFilter, JobState, Queue, QueueSettings, open_queue
from services.consoles.auth import hash_password

PASSWORDS = {"alice": "alice-admin-pw", "bob": "bob-ops-pw"}
ROLES = {"alice": "admin", "bob": "ops"}


@dataclasses.dataclass(frozen=True)
class Seeded:
    done: list[int]
    dead: list[int]
    failed: list[int]
    pending: list[int]
    processing: list[int]
    cancelled: list[int]


def write_users(path: Path) -> Path:
    users = {
        name: {"role": ROLES[name], "password_hash": hash_password(password)}
        for name, password in PASSWORDS.items()
    }
    path.write_text(json.dumps(users), encoding="utf-8")
    return path


def seed(queue: Queue) -> Seeded:
    """4 done, 3 dead, 2 failed (retrying), 3 pending, 1 processing, 1 cancelled;
    two consumers, one of them dead."""
    for n in range(14):
        queue.enqueue(f"jobs/{n:04d}.txt", queue="emails" if n % 2 else "default",
                      max_attempts=3)  # fmt: skip
    claimed = queue.claim("worker-a", limit=10, lease_seconds=600)
    done, dead, failed = claimed[:4], claimed[4:7], claimed[7:9]
    for job in done:
        queue.complete(job.id, job.lease_token or "")
    for job in dead:
        queue.fail(job.id, job.lease_token or "", "ValueError: malformed record", retryable=False)
    for job in failed:
        queue.fail(job.id, job.lease_token or "", "TimeoutError: upstream slow")
    processing = claimed[9:]
    pending = queue.list_jobs(JobFilter(statuses=(JobState.PENDING,)), limit=100).jobs
    cancelled = queue.cancel(pending[0].id, actor="setup")
    queue.consumer_register("worker-b", host="host-b", pid=202, queues="default")
    queue.consumers_mark_dead(-1.0)  # worker-b counts as silent for too long: dead
    queue.consumer_register("worker-a", host="host-a", pid=101, queues="default,emails")
    queue.consumer_heartbeat("worker-a", state="busy", current_job_id=processing[0].id,
                             jobs_done=4, jobs_failed=5)  # fmt: skip
    return Seeded(
        done=[j.id for j in done],
        dead=[j.id for j in dead],
        failed=[j.id for j in failed],
        pending=[j.id for j in pending[1:]],
        processing=[j.id for j in processing],
        cancelled=[cancelled.id],
    )


def seeded_database(directory: Path) -> tuple[Path, Seeded]:
    path = directory / "queue.db"
    queue = open_queue(str(path), settings=QueueSettings(db=str(path)))
    try:
        ids = seed(queue)
    finally:
        queue.close()
    return path, ids


BUSY_QUEUES = ("default", "emails", "reports", "images", "billing")


def seed_busy(queue: Queue, jobs: int = 4000) -> dict[str, list[int]]:
    """A queue like the issue's: about 4,000 jobs in 5 queues, JSON payloads, a few
    priority-99 jobs among priority 0, 31 dead-lettered with the same error but each its
    own path, retrying timeouts, jobs running on live consumers. Returns ids by kind."""
    import json as _json

    requests = []
    for n in range(jobs):
        payload = _json.dumps({"file": f"/data/in/{n:05d}.csv", "rows": n % 500, "owner": "ops"})
        priority = 99 if n % 997 == 0 and n < 3000 else 0  # none among the newest
        requests.append(EnqueueRequest(payload, BUSY_QUEUES[n % 5], priority, max_attempts=3))
    made = [j.id for j in queue.enqueue_many(requests)]
    claimed = queue.claim("worker-1", limit=len(made) - 300, lease_seconds=3600)
    dead, failed, running = [], [], []
    for n, job in enumerate(claimed):
        token = job.lease_token or ""
        if n < 31:
            missing = f"PermanentError: job file /data/jobs/{job.id:06d}.txt does not exist"
            queue.fail(job.id, token, missing, retryable=False)
            dead.append(job.id)
        elif n < 40:
            traceback = (
                f'Traceback (most recent call last):\n  File "handler.py", line {n}, in run\n'
                f"    rows = parse(path)\nValueError: bad row {n} in /data/in/{n:05d}.csv"
            )
            queue.fail(job.id, token, traceback, retryable=False)
            dead.append(job.id)
        elif n < 52:
            queue.fail(job.id, token, f"TimeoutError: upstream did not answer within {20 + n}s")
            failed.append(job.id)
        elif n < 60:
            running.append(job.id)  # held by worker-1
        else:
            queue.complete(job.id, token)
    for n in range(5):
        serves = "*" if n < 3 else "emails,images"
        queue.consumer_register(f"worker-{n + 1}", host=f"host-{n % 2}", pid=100 + n, queues=serves)
    return {"all": made, "dead": dead, "failed": failed, "running": running}
