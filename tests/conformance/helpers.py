"""Small helpers the conformance tests share. Public interface only: no backend internals."""

from __future__ import annotations

from pqcore import Job, JobState, Queue


def claim_one(queue: Queue, consumer: str = "consumer-1", **options: object) -> Job:
    """Claim exactly one job, failing the test if there was none."""
    claimed = queue.claim(consumer, limit=1, **options)  # type: ignore[arg-type]
    assert len(claimed) == 1, f"expected one claimable job, got {claimed}"
    return claimed[0]


def token(job: Job) -> str:
    assert job.lease_token is not None, f"job {job.id} holds no lease"
    return job.lease_token


def snapshot(queue: Queue) -> tuple[list[Job], dict[int, int]]:
    """Every job and the length of its history: compared before/after a rejected call."""
    jobs = sorted(queue.list_jobs(limit=1000).jobs, key=lambda j: j.id)
    return jobs, {j.id: len(queue.history(j.id)) for j in jobs}


def actions(queue: Queue, job_id: int) -> list[str]:
    return [e.action for e in queue.history(job_id)]


def statuses(queue: Queue) -> dict[int, JobState]:
    return {j.id: j.status for j in queue.list_jobs(limit=1000).jobs}
