"""Container crashes and restarts lose nothing.

Timings come from compose.test.yaml (work 2-3 s, lease 6 s, rescue every second). The
stack that users start, with its own timings, is tested in test_user_commands.py (work
flowing through five consumers, each scraped by Prometheus).
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from tests.containers.conftest import Stack, wait_for

# 900 s: the first test also pays for the session setup (debootstrap, wheels, image builds).
pytestmark = [pytest.mark.acceptance, pytest.mark.slow, pytest.mark.timeout(900)]


def done_exactly_once(snapshot: dict[str, Any]) -> None:
    """Every job done, each completed by exactly one consumer, and doctor finds nothing."""
    for job in snapshot["jobs"]:
        assert job["status"] == "done", job
        assert len(job["completed_by"]) == 1, job
    assert snapshot["doctor"] == [], snapshot["doctor"]


def all_done(stack: Stack, expected: int) -> dict[str, Any] | None:
    snap = stack.snapshot()
    jobs = snap["jobs"]
    if len(jobs) >= expected and all(j["status"] == "done" for j in jobs):
        return snap
    return None


def completion_lines(stack: Stack, container: str, job: dict[str, Any]) -> int:
    text = stack.read_job_file(container, job["data"])
    return sum(1 for line in text.splitlines() if f" job={job['id']} " in f" {line} ")


def processing_job(stack: Stack) -> dict[str, Any] | None:
    jobs = [j for j in stack.snapshot()["jobs"] if j["status"] == "processing"]
    return jobs[0] if jobs else None


def kill_holder(stack: Stack) -> tuple[list[dict[str, Any]], str]:
    """SIGKILL the one consumer container while it holds work; returns the jobs it held
    (read after the kill) and its hostname.

    Only one consumer runs, and more jobs wait than it finishes before the kill lands:
    it settles a job and claims the next in one transaction, so from its first claim to
    its last it always holds one. Which job it held is read after the kill, so the test
    never races the consumer for the moment of a claim or a completion. The container
    is then removed, so compose starts a fresh consumer instead of restarting it.
    """
    [victim] = stack.containers("consumer")
    host = stack.inspect(victim)["Config"]["Hostname"]
    wait_for(lambda: processing_job(stack), "a job being processed", timeout=60)
    stack.kill(victim)
    assert not stack.inspect(victim)["State"]["Running"]
    # Jobs the victim held when it died: still processing, or already rescued by the
    # manager (under load the snapshot can outlast the 6 s lease); a rescued job keeps
    # the victim's consumer id until it is claimed again.
    snap = stack.snapshot()["jobs"]
    held = [
        j
        for j in snap
        if j["status"] in ("processing", "pending")
        and (j["consumer_id"] or "").startswith(host + "-")
    ]
    assert held, "the kill landed between jobs: it proves nothing"
    stack.remove(victim)
    return held, host


def test_killed_manager_restarts_and_rescues_a_killed_consumers_job_once(stack: Stack) -> None:
    """A SIGKILLed manager is restarted by its restart policy; a consumer then SIGKILLed
    while holding a job: only the restarted manager can give the orphaned job back, a
    fresh consumer completes it, exactly once, and its job file has one line per job."""
    stack.set(PQ_TEST_WORK_MIN="6", PQ_TEST_WORK_MAX="8")
    stack.up("manager", "consumer", scale_consumers=1)
    [manager] = stack.containers("manager")
    wait_for(lambda: stack.health(manager) == "healthy", "the manager healthy", timeout=60)

    # The manager process dies (SIGKILL to its PID 1 from the host, as an OOM kill would):
    # the restart policy brings it back; no human starts it.
    os.kill(stack.inspect(manager)["State"]["Pid"], signal.SIGKILL)
    wait_for(
        lambda: (
            stack.inspect(manager)["RestartCount"] >= 1
            and stack.inspect(manager)["State"]["Running"]
        ),
        "the manager restarted by its restart policy",
        timeout=60,
    )

    stack.produce(3)  # 18-24 s of work for one consumer: it is holding one when killed
    held, victim_host = kill_holder(stack)
    stack.up("consumer", scale_consumers=1)  # a fresh consumer takes over

    snap = wait_for(lambda: all_done(stack, 3), "all three jobs done", timeout=180, every=1)
    done_exactly_once(snap)
    for orphan in held:
        job = next(j for j in snap["jobs"] if j["id"] == orphan["id"])
        assert "rescue" in job["actions"], job  # the manager took it back: lease expired
        assert not job["completed_by"][0].startswith(victim_host + "-"), job
    [survivor] = stack.containers("consumer")
    for job in snap["jobs"]:
        assert completion_lines(stack, survivor, job) == 1, job  # one line per job

    metrics = stack.metrics(manager, 9100)
    assert "pq_manager_is_leader 1.0" in metrics
    recovered = f'pq_stalled_jobs_recovered_total{{reason="lease_expired"}} {len(held)}.0'
    assert recovered in metrics


def test_stack_stop_and_start_loses_nothing(stack: Stack) -> None:
    stack.up("manager", "consumer", scale_consumers=2)
    stack.produce(8)
    wait_for(lambda: processing_job(stack), "a job being processed", timeout=60)

    stack.command("stop", timeout=120)  # SIGTERM to every container, as on a host reboot
    assert stack.containers("consumer") == [] and stack.containers("manager") == []
    snap = stack.snapshot()  # read with a one-off container: the stack is down
    assert len(snap["jobs"]) == 8
    # graceful shutdown: every job finished or given back, none left held by a lease
    assert {j["status"] for j in snap["jobs"]} <= {"pending", "done"}, snap["jobs"]

    stack.command("start")
    snap = wait_for(lambda: all_done(stack, 8), "all eight jobs done", timeout=120, every=1)
    done_exactly_once(snap)
    doctor = stack.command("run", "--rm", "--no-deps", "-T", "manager", "pq", "doctor", timeout=120)
    assert doctor.returncode == 0
