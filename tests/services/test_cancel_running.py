"""Cancelling a running job through `pq cancel` while a real consumer process runs it
(issue 12, feature 6): the consumer learns of it by its next lease heartbeat, stops a
cooperative handler before it writes, names the operator in its log, counts it, and
takes the next job; a handler that ignores the cancel is fenced."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request

from pqcore import JobState
from tests.conftest import pq_command
from tests.services.system import System, completion_lines, pid_of
from tests.support import free_port, wait_for

LEASE = 3.0  # heartbeats every lease/3 = 1 s
HEARTBEAT = LEASE / 3
TEST_HANDLERS = {"PQ_HANDLER_MODULES": "tests.services.handlers_for_tests"}


def running_in(system: System, job_id: int, pid: int) -> bool:
    job = system.queue.get(job_id)
    return job.status is JobState.PROCESSING and pid_of(job.consumer_id or "") == pid


def pq_cancel(system: System, job_id: int) -> None:
    done = subprocess.run(
        [*pq_command(), "--db", system.backend.url, "cancel", str(job_id),
         "--actor", "carol", "--reason", "customer withdrew"],
        capture_output=True, text=True, timeout=60, env=system.env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "cancelled" in done.stdout


def scrape(port: int, metric: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = re.findall(rf"^{metric}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE)
    return sum(float(v) for v in values)


def test_a_running_job_cancelled_with_pq_cancel_stops_and_the_consumer_goes_on(
    system: System,
) -> None:
    port = free_port()
    consumer = system.start(
        "consumer", "--work-min", 0, "--work-max", 0, "--lease", LEASE,
        PQ_METRICS_PORT=port, **TEST_HANDLERS,
    )  # fmt: skip
    system.write_job_file("job-slow.txt")
    slow = system.queue.enqueue("slow:30:job-slow.txt").id
    wait_for(lambda: running_in(system, slow, consumer.pid), 30, "the consumer to run the job")

    pq_cancel(system, slow)
    cancelled_at = time.monotonic()
    wait_for(
        lambda: f"job cancelled by operator job={slow} " in consumer.text(),
        10,
        "the consumer to notice the cancel",
        interval=0.02,
    )
    noticed = time.monotonic() - cancelled_at
    print(f"\ncancel noticed by the consumer after {noticed:.2f}s (heartbeat {HEARTBEAT:g}s)")
    assert noticed <= 2 * HEARTBEAT + 0.5
    assert "actor=carol reason=customer withdrew" in consumer.text()

    job = system.queue.get(slow)
    assert job.status is JobState.CANCELLED and job.lease_token is None
    last = system.queue.history(slow)[-1]
    assert (last.action, last.actor, last.detail) == ("cancel", "carol", "customer withdrew")

    # The handler stopped (the consumer is free for the next job) and wrote nothing.
    system.write_job_file("job-next.txt")
    following = system.queue.enqueue("job-next.txt").id
    wait_for(lambda: system.queue.get(following).status is JobState.DONE, 30, "the next job")
    assert pid_of(system.queue.history(following)[-1].actor) == consumer.pid
    assert completion_lines(system.jobs_dir / "job-slow.txt") == []
    assert completion_lines(system.jobs_dir / "job-next.txt") == [following]
    actions = [e.action for e in system.queue.history(slow)]
    assert actions == ["enqueue", "claim", "cancel"]  # no outcome reported after the cancel
    assert scrape(port, "pq_jobs_cancelled_total") == 1
    assert scrape(port, "pq_lease_lost_total") == 0  # a cancel, not a lost lease
    assert system.doctor().returncode == 0


def test_a_handler_that_ignores_the_cancel_is_fenced(system: System) -> None:
    consumer = system.start("consumer", "--work-min", 0, "--work-max", 0, "--lease", LEASE,
                            **TEST_HANDLERS)  # fmt: skip
    stubborn = system.queue.enqueue("stubborn:3").id  # sleeps, never checks its lease
    wait_for(lambda: running_in(system, stubborn, consumer.pid), 30, "the consumer to run it")
    pq_cancel(system, stubborn)
    wait_for(lambda: f"job cancelled by operator job={stubborn} " in consumer.text(), 10,
             "the consumer to notice the cancel")  # fmt: skip
    wait_for(
        lambda: f"job={stubborn} returned done after it was cancelled" in consumer.text(),
        15,
        "the stubborn handler to return",
    )
    system.write_job_file("job-next.txt")
    following = system.queue.enqueue("job-next.txt").id
    wait_for(lambda: system.queue.get(following).status is JobState.DONE, 30, "the next job")
    assert system.queue.get(stubborn).status is JobState.CANCELLED
    assert [e.action for e in system.queue.history(stubborn)] == ["enqueue", "claim", "cancel"]
    assert system.doctor().returncode == 0
