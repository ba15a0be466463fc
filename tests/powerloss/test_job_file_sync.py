"""The consumer's job files made durable a batch at a time (services.consumer.durability),
on FaultFS: a completion line is on the disk before its job's outcome is written, and a
file whose fsync fails never lets its job be reported done."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pqcore import Job, Outcome, OutcomeKind, Queue, open_queue
from services.common import jobfiles
from services.consumer.durability import SYNC_THREADS, BatchedSync
from services.consumer.handlers import HandlerContext, append_completion
from tests.powerloss.faultfs import FaultFS

pytestmark = pytest.mark.integration


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[Queue]:
    with open_queue(str(tmp_path / "queue.db")) as queue:
        yield queue


def claimed_job(queue: Queue, jobs_dir: Path, name: str) -> Job:
    # Made durable as the producer makes it: only the completion line will be unsynced.
    jobfiles.write_atomically(jobs_dir, name, "created by the test\n")
    queue.enqueue(name)
    [job] = queue.claim("c1", queues=["default"])
    return job


def run_handler(job: Job, jobs_dir: Path, sync: BatchedSync | None) -> None:
    ctx = HandlerContext(
        job=job, argument=job.data, jobs_dir=jobs_dir, consumer_id="c1", work_seconds=0.0,
        stop_requested=lambda: False, grace_left=lambda: float("inf"),
        lease_lost=threading.Event(),
        sync_later=None if sync is None else sync.deferrer(job.id),
    )  # fmt: skip
    append_completion(ctx)


def unsynced(fs: FaultFS, name: str) -> bool:
    return any(key.startswith(f"{name}#") for key in fs.status()["unsynced"])


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def done(job: Job) -> Outcome:
    return Outcome(job.id, job.lease_token or "", OutcomeKind.DONE)


def test_the_line_is_synced_when_its_outcome_is_about_to_be_written(
    faultfs: FaultFS, queue: Queue
) -> None:
    jobs_dir = faultfs.mountpoint
    sync = BatchedSync(on_disk_error=lambda error: pytest.fail(f"no disk error: {error}"))
    jobs = [claimed_job(queue, jobs_dir, f"job-{n}.txt") for n in range(5)]
    fds_before = open_fds()
    for job in jobs:
        run_handler(job, jobs_dir, sync)
    # Written, not yet on the disk: the handler left the fsync to the batch.
    assert all(unsynced(faultfs, job.data) for job in jobs)
    assert open_fds() == fds_before + len(jobs)
    outcomes = [done(job) for job in jobs[:3]]
    assert sync.before_write(outcomes) == outcomes  # all synced: written as they are
    assert [unsynced(faultfs, job.data) for job in jobs] == [False] * 3 + [True] * 2
    assert open_fds() == fds_before + 2
    sync.drop(jobs[3].id)  # its lease was lost: closed, not synced (a rerun syncs it)
    assert unsynced(faultfs, jobs[3].data)
    sync.close()
    assert open_fds() == fds_before
    faultfs.cut()
    faultfs.remount()
    for job in jobs:
        text = (jobs_dir / job.data).read_text()
        assert jobfiles.holds_completion(text, job.id) == (job in jobs[:3]), text


def test_a_failed_fsync_turns_done_into_a_retryable_failure_and_the_rerun_syncs(
    faultfs: FaultFS, queue: Queue
) -> None:
    jobs_dir = faultfs.mountpoint
    errors: list[OSError] = []
    sync = BatchedSync(on_disk_error=errors.append)
    bad, good = (claimed_job(queue, jobs_dir, name) for name in ("job-bad.txt", "job-good.txt"))
    for job in (bad, good):
        run_handler(job, jobs_dir, sync)
    faultfs.fault("eio_fsync", match="job-bad.txt", count=1)
    written = sync.before_write([done(bad), done(good)])
    assert written[1] == done(good)
    assert written[0].kind == OutcomeKind.FAILED and written[0].retryable
    assert "could not be made durable" in (written[0].error or "")
    assert [e.errno for e in errors] == [errno.EIO]
    # The job runs again: the line it finds may never reach the disk, so it is written
    # again and synced before that run reports done; still one line in the file.
    run_handler(bad, jobs_dir, sync)
    assert sync.before_write([done(bad)]) == [done(bad)]
    sync.close()
    faultfs.cut()
    faultfs.remount()
    for job in (bad, good):
        text = (jobs_dir / job.data).read_text()
        assert sorted(jobfiles.completion_job_ids(text)) == [job.id]
        assert text.count("job=") == 1, text


def test_a_batch_larger_than_the_sync_threads_fails_only_the_job_whose_fsync_failed(
    faultfs: FaultFS, queue: Queue
) -> None:
    # Each thread syncs a share of the batch in turn: a failure in the middle of a share
    # is its own job's, and the files after it in that share are still synced.
    jobs_dir = faultfs.mountpoint
    errors: list[OSError] = []
    sync = BatchedSync(on_disk_error=errors.append)
    jobs = [claimed_job(queue, jobs_dir, f"job-{n}.txt") for n in range(3 * SYNC_THREADS + 1)]
    for job in jobs:
        run_handler(job, jobs_dir, sync)
    bad = jobs[SYNC_THREADS + 2]  # second in its thread's share, files before and after it
    faultfs.fault("eio_fsync", match=bad.data, count=1)
    written = sync.before_write([done(job) for job in jobs])
    assert [o.job_id for o in written] == [job.id for job in jobs]
    assert [o.kind for o in written if o.job_id != bad.id] == [OutcomeKind.DONE] * (len(jobs) - 1)
    [failed] = [o for o in written if o.job_id == bad.id]
    assert failed.kind == OutcomeKind.FAILED and failed.retryable
    assert [e.errno for e in errors] == [errno.EIO]
    assert [job.data for job in jobs if unsynced(faultfs, job.data)] == [bad.data]
    sync.close()
    faultfs.cut()
    faultfs.remount()
    for job in jobs:
        if job is not bad:
            assert jobfiles.holds_completion((jobs_dir / job.data).read_text(), job.id)


def test_without_a_batch_the_handler_syncs_before_it_returns(
    faultfs: FaultFS, queue: Queue
) -> None:
    job = claimed_job(queue, faultfs.mountpoint, "job-alone.txt")
    run_handler(job, faultfs.mountpoint, None)
    assert not unsynced(faultfs, job.data)
