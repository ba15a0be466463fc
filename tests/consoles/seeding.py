"""A small queue with every state present, for the console tests (AppTest and browser)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pqcore import JobFilter, JobState, Queue, QueueSettings, open_queue
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
