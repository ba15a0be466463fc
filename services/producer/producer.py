"""The producer loop: write a job file, then enqueue its path, every ``interval`` seconds.

Crash safety. The file is written atomically *before* the job is enqueued, with the
path (relative to the jobs directory) as the dedupe key. A producer killed between
the two leaves a file without a job: at start, ``reconcile`` enqueues such orphans.
It must not re-enqueue files whose job already finished (a dedupe key is unique only
among *active* jobs, so enqueueing a finished file's path would run it again). So a
file is an orphan only if

1. it holds no completion line (covers finished jobs even after ``purge_done``
   deleted their rows), and
2. no job in any state carries its path as dedupe key (covers pending, running,
   failed, dead-lettered and cancelled jobs; an operator's cancel is not undone).

Re-enqueueing a file whose job is active is harmless anyway (dedupe). The check is
safe with one producer per jobs directory; two producers sharing a directory could
race a restart against a live write (documented in docs/architecture.md).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path

from loguru import logger

from pqcore import EnqueueRequest, Job, Queue, StorageError
from services.common import jobfiles, liveness, storage
from services.common.signals import StopRequest
from services.producer import metrics

# Test-only fault injection (tests/chaos): pause this many seconds between writing a
# job file and enqueueing it, so a test can SIGKILL the producer in that window.
PAUSE_ENV = "PQ_TEST_PAUSE_AFTER_FILE_WRITE"
ENQUEUE_RETRIES = 5
RECONCILE_BATCH = 500
STALE_TEMP_SECONDS = 60.0


class Producer:
    def __init__(
        self,
        queue: Queue,
        jobs_dir: Path,
        *,
        interval: float = 5.0,
        count: int | None = None,
        queue_name: str = "default",
        stop: StopRequest | None = None,
        producer_id: str = "producer",
    ) -> None:
        self.queue = queue
        self.jobs_dir = jobs_dir
        self.interval = interval
        self.count = count
        self.queue_name = queue_name
        self.stop = stop or StopRequest()
        self.producer_id = producer_id
        self.pause_after_write = float(os.environ.get(PAUSE_ENV) or 0)

    def run(self) -> int:
        """Reconcile, then produce until ``count`` jobs were made or a stop is requested.

        A storage error (the queue's disk, or the jobs directory's) does not stop the
        producer: it is logged, counted (``pq_storage_errors_total``) and the next round
        reconciles first, so a file written but not enqueued meanwhile gets its job."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        behind = not self._attempt("reconcile", self.reconcile)
        made = 0
        next_at = time.monotonic()
        while not self.stop.requested and (self.count is None or made < self.count):
            liveness.beat()
            if behind:
                behind = not self._attempt("reconcile", self.reconcile)
            if not behind:
                if self._attempt("produce a job", self.produce_one):
                    made += 1
                else:
                    behind = True
            if self.count is not None and made >= self.count:
                break
            next_at += self.interval
            # Fixed rate; after a long stall start afresh rather than bursting to catch up.
            next_at = max(next_at, time.monotonic())
            if liveness.wait(self.stop, next_at - time.monotonic()):
                break
        logger.info("producer stopping: {} job(s) made", made)
        return made

    def _attempt(self, what: str, action: Callable[[], object]) -> bool:
        try:
            action()
            return True
        except StorageError as error:  # counted by the queue wrapper
            logger.error("could not {}: {}; retrying in {}s", what, error, self.interval)
        except OSError as error:  # the jobs directory: EIO, ENOSPC, EROFS
            storage.count("job_file")
            where = f" ({error.filename})" if error.filename else ""
            logger.error(
                "could not {}: job file error {}{}; retrying in {}s",
                what,
                error.strerror or error,
                where,
                self.interval,
            )
        return False

    def produce_one(self) -> Job:
        name = jobfiles.new_job_file_name()
        created = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        path = jobfiles.write_atomically(
            self.jobs_dir, name, f"created {created} by {self.producer_id}\n"
        )
        metrics.FILES_WRITTEN.inc()
        logger.debug("wrote job file {}", path)
        if self.pause_after_write:
            logger.warning(
                "test pause after writing {}: {}s ({})", name, self.pause_after_write, PAUSE_ENV
            )
            time.sleep(self.pause_after_write)
        job = self._enqueue([name])[0]
        logger.info("enqueued job={} file={}", job.id, name)
        return job

    def _enqueue(self, names: list[str]) -> list[Job]:
        """Enqueue payloads with their own name as dedupe key, retrying storage errors
        briefly (the files are safe on disk; a restart would reconcile them anyway)."""
        requests = [EnqueueRequest(n, queue=self.queue_name, dedupe_key=n) for n in names]
        for attempt in range(ENQUEUE_RETRIES + 1):
            try:
                before = time.time()
                jobs = self.queue.enqueue_many(requests, actor=self.producer_id)
                break
            except StorageError as error:
                if attempt == ENQUEUE_RETRIES:
                    raise
                logger.warning(
                    "enqueue failed ({}); retry {} of {}", error, attempt + 1, ENQUEUE_RETRIES
                )
                self.stop.wait(0.2 * 2**attempt)
        new = sum(1 for j in jobs if j.created_at >= before)  # older ones were dedupe hits
        metrics.JOBS_ENQUEUED.labels(queue=self.queue_name).inc(new)
        return jobs

    def reconcile(self) -> int:
        """Enqueue job files that have no job (see the module docstring); returns how many."""
        self._remove_stale_temp_files()
        candidates = []
        for path in sorted(self.jobs_dir.glob(jobfiles.JOB_FILE_GLOB)):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as error:
                logger.warning("reconcile: cannot read {}: {}", path, error)
                continue
            if not jobfiles.completion_job_ids(text):
                candidates.append(path.name)
        orphans: list[str] = []
        for start in range(0, len(candidates), RECONCILE_BATCH):
            batch = candidates[start : start + RECONCILE_BATCH]
            known = self.queue.dedupe_keys_known(batch)
            orphans += [name for name in batch if name not in known]
        for start in range(0, len(orphans), RECONCILE_BATCH):
            jobs = self._enqueue(orphans[start : start + RECONCILE_BATCH])
            for job in jobs:
                logger.warning("reconciled orphan job file {} as job={}", job.data, job.id)
        metrics.RECONCILED.inc(len(orphans))
        logger.info(
            "reconcile: {} job file(s) without a completion line, {} orphan(s) enqueued",
            len(candidates),
            len(orphans),
        )
        return len(orphans)

    def _remove_stale_temp_files(self) -> None:
        """A crash mid-write leaves a temporary file that never became a job file."""
        cutoff = time.time() - STALE_TEMP_SECONDS
        for temp in self.jobs_dir.glob(jobfiles.TEMP_PREFIX + "*"):
            try:
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()
                    logger.info("removed unfinished temporary file {}", temp.name)
            except OSError:
                pass
