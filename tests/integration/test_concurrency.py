"""Several real processes claim and complete the same queue while a rescuer takes back
the leases of jobs held too long: every job is done exactly once, none is lost, and no
job is ever held by two live leases."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

from pqcore import EnqueueRequest, JobState, Queue
from tests.backends import BackendHandle
from tests.integration.conftest import Child

JOBS = 2000
WORKERS = 4
LEASE = 0.5
SLOW_EVERY = 150  # each worker overstays the lease on every 150th job it handles

pytestmark = pytest.mark.integration


def test_many_processes_complete_every_job_exactly_once(
    backend: BackendHandle, children: list[Child], tmp_path: Path
) -> None:
    queue = backend.make()
    for start in range(0, JOBS, 500):
        queue.enqueue_many(
            EnqueueRequest(f"jobs/{i:05d}", priority=i % 3) for i in range(start, start + 500)
        )
    outputs = [tmp_path / f"worker-{n}.json" for n in range(WORKERS)]
    options = ["--lease", str(LEASE), "--slow-every", str(SLOW_EVERY), "--deadline", "120"]
    for n, out in enumerate(outputs):
        args = ["--out", str(out), "--consumer", f"worker-{n}", *options]
        children.append(Child("drain", backend.url, *args))
    # The parent is the manager: it rescues expired leases while the workers run.
    rescued = 0
    deadline = time.monotonic() + 150
    while any(child.proc.poll() is None for child in children):
        assert time.monotonic() < deadline, "workers did not finish in time"
        rescued += len(queue.rescue_expired())
        time.sleep(0.02)  # the rescuer's poll interval, not a synchronisation
    for child in children:
        assert child.proc.returncode == 0, child.stderr()

    reports = [json.loads(out.read_text()) for out in outputs]
    completed_by = {job_id: r["consumer"] for r in reports for job_id in r["done"]}
    completions = Counter(job_id for r in reports for job_id in r["done"])
    lost = [job_id for r in reports for job_id in r["lost"]]
    stats = queue.stats()
    assert stats.counts["done"] == JOBS and stats.total == JOBS
    assert set(completions) == set(all_job_ids(queue))  # none lost
    assert max(completions.values()) == 1  # none completed twice
    assert lost, "no worker overstayed its lease: the fencing path was not exercised"
    assert rescued >= len(lost)
    assert all(w["done"] for w in reports), "some worker never got a job"

    for job_id in completions:
        events = queue.history(job_id)
        holder: str | None = None
        for event in events:
            if event.action == "claim":
                assert holder is None, (
                    f"job {job_id} claimed by {event.actor} while {holder} held it"
                )
                holder = event.actor
            elif event.from_status is JobState.PROCESSING:
                assert holder is not None
                if event.action == "complete":
                    assert event.actor == holder
                holder = None
        completes = [e for e in events if e.action == "complete"]
        assert len(completes) == 1 and completes[0].actor == completed_by[job_id]
        assert events[-1].to_status is JobState.DONE
    for job_id in lost:
        assert "rescue" in [e.action for e in queue.history(job_id)]
    assert queue.doctor() == []


def all_job_ids(queue: Queue) -> list[int]:
    ids: list[int] = []
    cursor = None
    while True:
        page = queue.list_jobs(limit=1000, before_id=cursor)
        ids += [j.id for j in page.jobs]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor
