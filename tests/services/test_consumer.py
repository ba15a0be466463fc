"""The consumer as a real process: the completion line, path safety, retries, idling."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from pqcore import JobState
from tests.services.system import System, completion_lines
from tests.support import wait_for

FAST = ("--work-min", 0, "--work-max", 0)
TEST_HANDLERS = {"PQ_HANDLER_MODULES": "tests.services.handlers_for_tests"}
LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+\+00:00 job=(\d+) attempt=1 consumer=(\S+)$")


def enqueue_file(system: System, name: str) -> int:
    system.write_job_file(name)
    return system.queue.enqueue(name, dedupe_key=name).id


def settled(system: System, *job_ids: int) -> bool:
    return all(
        system.queue.get(j).status not in (JobState.PENDING, JobState.PROCESSING) for j in job_ids
    )


def test_consumer_appends_one_completion_line_and_marks_the_job_done(system: System) -> None:
    consumer = system.start("consumer", *FAST)
    job_id = enqueue_file(system, "job-1.txt")
    wait_for(lambda: system.queue.get(job_id).status is JobState.DONE, 30, "the job done")
    _created, line = (system.jobs_dir / "job-1.txt").read_text().splitlines()
    match = LINE.match(line)
    assert match and int(match.group(1)) == job_id
    [row] = system.queue.consumers()
    assert row.id == match.group(2) and row.pid == consumer.pid
    wait_for(lambda: system.queue.consumers()[0].jobs_done == 1, 30, "the consumer row updated")
    assert "completed job=" in (system.log_dir / "consumer.log").read_text()
    consumer.signal(signal.SIGTERM)
    assert consumer.wait(30) == 0
    assert system.queue.consumers()[0].state == "stopped"


def test_unsafe_or_missing_paths_fail_permanently_and_touch_nothing(system: System) -> None:
    outside = system.root / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("keep me\n")
    before = secret.stat()
    (system.jobs_dir / "job-link.txt").symlink_to(secret)
    (system.jobs_dir / "subdir").mkdir()
    payloads = {
        "../outside/secret.txt": "contains '..'",
        str(secret): "outside the jobs directory",
        "job-link.txt": "outside the jobs directory",
        "job-missing.txt": "does not exist",
        "subdir": "is a directory",
    }
    ids = {p: system.queue.enqueue(p).id for p in payloads}
    system.start("consumer", *FAST)
    wait_for(lambda: settled(system, *ids.values()), 30, "every unsafe job settled")
    for payload, why in payloads.items():
        job = system.queue.get(ids[payload])
        assert job.status is JobState.PERMANENTLY_FAILED, payload
        assert why in (job.error or ""), (payload, job.error)
    assert secret.read_text() == "keep me\n" and secret.stat().st_mtime == before.st_mtime
    assert sorted(os.listdir(outside)) == ["secret.txt"]


def test_a_redelivered_job_does_not_write_its_line_twice(system: System) -> None:
    # A consumer died after appending the line but before marking the job done.
    job_id = enqueue_file(system, "job-redelivered.txt")
    path = system.jobs_dir / "job-redelivered.txt"
    with path.open("a") as out:
        out.write(f"2026-01-01T00:00:00+00:00 job={job_id} attempt=1 consumer=dead-1-abcd\n")
    system.start("consumer", *FAST)
    wait_for(lambda: system.queue.get(job_id).status is JobState.DONE, 30, "the job done")
    assert completion_lines(path) == [job_id]


def test_transient_errors_retry_in_process_and_others_fail_the_job(system: System) -> None:
    ids = {
        kind: system.queue.enqueue(kind, max_attempts=3).id
        for kind in ("flaky:2", "eagain:", "broken:x", "reject:x")
    }
    consumer = system.start("consumer", *FAST, **TEST_HANDLERS)
    wait_for(lambda: settled(system, *ids.values()), 30, "every job settled")
    jobs = {kind: system.queue.get(job_id) for kind, job_id in ids.items()}
    assert jobs["flaky:2"].status is JobState.DONE and jobs["flaky:2"].attempts == 1
    assert jobs["eagain:"].status is JobState.FAILED  # after 3 immediate retries
    assert "Errno 11" in (jobs["eagain:"].error or "")
    assert jobs["broken:x"].status is JobState.FAILED  # retryable: the manager retries later
    assert "ValueError: cannot process 'x'" in (jobs["broken:x"].error or "")
    assert jobs["reject:x"].status is JobState.PERMANENTLY_FAILED
    text = consumer.text()
    assert text.count(f"job={ids['flaky:2']} (TransientError") == 2
    assert text.count(f"job={ids['eagain:']} (BlockingIOError") == 3


def test_an_idle_consumer_picks_up_work_quickly_without_spinning(system: System) -> None:
    consumer = system.start("consumer", *FAST)
    wait_for(lambda: system.queue.consumers(), 30, "the consumer registered")
    time.sleep(0.5)  # let start-up work settle before measuring the idle CPU
    cpu_before, wall_before = cpu_seconds(consumer.pid), time.monotonic()
    time.sleep(3)
    idle_share = (cpu_seconds(consumer.pid) - cpu_before) / (time.monotonic() - wall_before)
    job_id = enqueue_file(system, "job-quick.txt")
    wait_for(lambda: system.queue.get(job_id).status is JobState.DONE, 30, "the job done")
    enqueued, claimed = system.queue.history(job_id)[:2]
    latency = claimed.at - enqueued.at
    print(f"\nidle consumer: {idle_share:.1%} of a core; pickup {latency * 1000:.0f} ms")
    assert idle_share < 0.2
    assert latency < 2.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
