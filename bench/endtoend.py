"""Workload 7: end to end through the real services (``python -m services.producer`` and
``python -m services.consumer``), the default file handler with zero work time.

Setup, not timed: the bench writes the job files (plain writes, the producer's file
names and first line) and runs the real producer once with ``--count 0``: its start-up
reconcile enqueues every file without a job, in batches (writing the files through the
producer itself costs two fsyncs a file, half a minute per 5,000 jobs). Then K consumer
processes start with the queue paused; once all K have registered it is resumed, and the
clock runs from the resume to the last job's ``finished_at`` (read back once the queue
reports every job done). Process start-up (Python imports, one to two seconds a process
on a loaded machine, as long as the whole run) is outside the clock for every consumer,
not only the first. The consumers' own loop (claims and settlements, heartbeats, a log
line per job, appending the completion line to each job file and fsyncing it) is inside
it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.workloads import Result, fresh_dir
from pqcore import JobFilter, JobState, Queue, open_queue


def _env(directory: Path, sync: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PQ_DB=str(directory / "queue.db"),
        PQ_JOBS_DIR=str(directory / "jobs"),
        PQ_SQLITE_SYNCHRONOUS=sync,
        PQ_METRICS_PORT="0",
        PQ_WORK_MIN="0",
        PQ_WORK_MAX="0",
        PQ_LOG_DIR=str(directory / "logs"),
        # As under `make run` (deploy/supervisord.conf): every line in the log file,
        # stderr only from WARNING up.
        PQ_LOG_STDERR_LEVEL="WARNING",
    )
    return env


def _last_finished_at(queue: Queue) -> float:
    """The newest finished_at of the done jobs (read after the clock stopped)."""
    newest, before = 0.0, None
    done = JobFilter(statuses=(JobState.DONE,))
    while True:
        page = queue.list_jobs(done, limit=1000, before_id=before)
        newest = max([newest, *(job.finished_at or 0.0 for job in page.jobs)])
        if page.next_cursor is None:
            return newest
        before = page.next_cursor


def end_to_end(root: Path, sync: str, n: int, consumers: int, timeout: float = 240) -> Result:
    from pqcore import QueueSettings
    from services.common import jobfiles

    directory = fresh_dir(root, f"w7-{consumers}")
    env = _env(directory, sync)
    jobs_dir = Path(env["PQ_JOBS_DIR"])
    jobs_dir.mkdir(parents=True)
    for _ in range(n):
        (jobs_dir / jobfiles.new_job_file_name()).write_text("created by the bench\n")
    subprocess.run(
        [sys.executable, "-m", "services.producer", "--count", "0", "--interval", "0"],
        env=env,
        check=True,
        timeout=timeout,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = env["PQ_DB"]
    queue = open_queue(db, settings=QueueSettings(db=db, sqlite_synchronous=sync))
    if queue.stats().counts["pending"] != n:
        raise RuntimeError(f"the producer enqueued {queue.stats().counts['pending']} of {n}")
    queue.pause("default", actor="bench", reason="consumers starting")
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "services.consumer"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(consumers)
    ]
    started = finished = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if started is None and len(queue.consumers()) >= consumers:
                queue.resume("default", actor="bench")
                started = time.time()  # the clock the consumers stamp finished_at with
            if queue.stats().counts["done"] >= n:
                finished = _last_finished_at(queue)
                break
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a consumer exited early")
            # The run ends at the last job's finished_at, not at this look: each look is
            # a stats() read (five queries, and a fold of the counts when they have grown),
            # and looking every 5 ms took a tenth of the two cores being timed.
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    stats = queue.stats()
    problems = queue.doctor()
    queue.close()
    if started is None or finished is None:
        raise RuntimeError(f"not done within {timeout:.0f} s: {stats.counts}")
    duplicates = sum(1 for p in problems if "completed" in p and "times" in p)
    return Result(
        rate=n / max(finished - started, 1e-9),
        n=n,
        duplicates=duplicates,
        losses=n - stats.counts["done"],
        errors=len(problems) - duplicates,
        first_error=problems[0] if problems else None,
        sync=sync,
    )
