"""The producer as a real process: atomic job files, dedupe keys, reconciliation."""

from __future__ import annotations

import subprocess
import sys

from pqcore import JobState
from tests.conftest import ROOT
from tests.services.system import System


def test_producer_writes_job_files_then_enqueues_their_paths(system: System) -> None:
    producer = system.run("producer", "--interval", 0, "--count", 5)
    assert producer.popen.returncode == 0
    files = sorted(p.name for p in system.jobs_dir.iterdir())
    assert len(files) == 5 and all(f.startswith("job-") and f.endswith(".txt") for f in files)
    jobs = system.queue.list_jobs().jobs
    assert sorted(j.data for j in jobs) == files
    assert all(j.dedupe_key == j.data and j.status is JobState.PENDING for j in jobs)
    for name in files:
        assert (system.jobs_dir / name).read_text().startswith("created ")
    assert (system.log_dir / "producer.log").read_text().count("enqueued job=") == 5


def test_reconcile_enqueues_only_files_that_never_had_a_job(system: System) -> None:
    queue = system.queue

    def file_with_job(name: str) -> int:
        system.write_job_file(name)
        return queue.enqueue(name, dedupe_key=name).id

    system.write_job_file("job-orphan.txt")
    done = file_with_job("job-done.txt")
    [held] = queue.claim("test")
    queue.complete(held.id, held.lease_token or "")
    (system.jobs_dir / "job-done.txt").write_text(
        f"created\n2026-01-01T00:00:00+00:00 job={done} attempt=1 consumer=c\n"
    )
    file_with_job("job-dead.txt")
    [held] = queue.claim("test")
    queue.fail(held.id, held.lease_token or "", "bad input", retryable=False)
    pending = file_with_job("job-pending.txt")
    queue.cancel(file_with_job("job-cancelled.txt"), actor="test")
    # A finished job whose row retention already purged: only its completion line remains.
    system.write_job_file(
        "job-purged.txt", "created\n2026-01-01T00:00:00+00:00 job=999 attempt=1 consumer=c\n"
    )
    system.write_job_file("notes.md")  # not a job file

    reconcile = system.run("producer", "--count", 0)
    assert reconcile.popen.returncode == 0, reconcile.text()
    assert "1 orphan(s) enqueued" in reconcile.text()
    jobs = {j.data: j for j in queue.list_jobs().jobs}
    assert sorted(jobs) == sorted(
        ["job-orphan.txt", "job-pending.txt", "job-done.txt", "job-cancelled.txt", "job-dead.txt"]
    )
    assert jobs["job-orphan.txt"].status is JobState.PENDING
    assert jobs["job-cancelled.txt"].status is JobState.CANCELLED  # not resurrected
    assert jobs["job-dead.txt"].status is JobState.PERMANENTLY_FAILED
    assert jobs["job-done.txt"].status is JobState.DONE
    assert jobs["job-pending.txt"].id == pending


def test_a_bad_setting_is_one_clear_error(system: System) -> None:
    proc = system.run("producer", "--count", 1, PQ_INTERVAL="soon")
    assert proc.popen.returncode == 2
    assert "--interval: invalid non_negative_float value: 'soon'" in proc.text()
    assert system.queue.stats().total == 0


def test_python_dash_m_runs_the_same_service(system: System) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.producer", "--interval", "0", "--count", "2"],
        cwd=ROOT,
        env=system.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert system.queue.stats().total == 2
