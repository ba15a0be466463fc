"""The compose stack with real containers: jobs flow, and container crashes lose nothing.

Timings come from compose.test.yaml (work 2-3 s, lease 6 s, rescue every second).
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from typing import Any

import pytest

from tests.containers.conftest import Stack, run, wait_for

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


def test_stack_starts_healthy_and_completes_jobs(stack: Stack) -> None:
    started = time.monotonic()
    stack.up("manager", "consumer", "producer", "admin", scale_consumers=2)
    created = time.monotonic() - started
    containers = [
        c for s in ("manager", "consumer", "producer", "admin") for c in stack.containers(s)
    ]
    assert len(containers) == 5
    # The host's relative PQ_DB (set by the fixture, as a shell may) never reaches them.
    for container in containers:
        env = dict(e.split("=", 1) for e in stack.inspect(container)["Config"]["Env"])
        assert env["PQ_DB"] == "/data/queue.db" and env["PQ_IN_CONTAINER"] == "1", env
    wait_for(
        lambda: all(stack.health(c) == "healthy" for c in containers),
        "every container healthy",
        timeout=90,
        every=1,
    )
    print(f"stack created in {created:.1f}s, healthy after {time.monotonic() - started:.1f}s")

    # the producer service keeps enqueueing; the consumers complete its jobs
    snap = wait_for(
        lambda: (
            (s := stack.snapshot()) and sum(j["status"] == "done" for j in s["jobs"]) >= 4 and s
        ),
        "four jobs done",
        timeout=60,
        every=1,
    )
    for job in (j for j in snap["jobs"] if j["status"] == "done"):
        assert len(job["completed_by"]) == 1, job
    assert snap["doctor"] == []

    # the admin console answers on its random host port, from the host
    port = stack.inspect(stack.containers("admin")[0])["NetworkSettings"]["Ports"]["8501/tcp"]
    url = f"http://127.0.0.1:{port[0]['HostPort']}/_stcore/health"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200


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
    run(["docker", "kill", victim])
    assert not stack.inspect(victim)["State"]["Running"]
    # Jobs the victim held when it died: still processing, or already rescued by the
    # manager (under load the snapshot, a docker exec, can outlast the 6 s lease); a
    # rescued job keeps the victim's consumer id until it is claimed again.
    snap = stack.snapshot()["jobs"]
    held = [
        j
        for j in snap
        if j["status"] in ("processing", "pending")
        and (j["consumer_id"] or "").startswith(host + "-")
    ]
    assert held, "the kill landed between jobs: it proves nothing"
    run(["docker", "rm", victim])
    return held, host


def test_killed_consumer_job_is_recovered_and_completed_once(stack: Stack) -> None:
    stack.env.update(PQ_TEST_WORK_MIN="6", PQ_TEST_WORK_MAX="8")
    stack.up("manager", "consumer", scale_consumers=1)
    stack.produce(5)  # 30-40 s of work for one consumer: it is holding one when killed
    held, victim_host = kill_holder(stack)
    stack.up("consumer", scale_consumers=1)  # a fresh consumer takes over

    snap = wait_for(lambda: all_done(stack, 5), "all five jobs done", timeout=180, every=1)
    done_exactly_once(snap)
    for orphan in held:
        job = next(j for j in snap["jobs"] if j["id"] == orphan["id"])
        assert "rescue" in job["actions"], job  # the manager took it back: lease expired
        assert not job["completed_by"][0].startswith(victim_host + "-"), job
    [survivor] = stack.containers("consumer")
    for j in snap["jobs"]:
        assert completion_lines(stack, survivor, j) == 1, j  # the job file: one line per job


def test_killed_manager_is_restarted_and_resumes(stack: Stack) -> None:
    stack.env.update(PQ_TEST_WORK_MIN="6", PQ_TEST_WORK_MAX="8")
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

    # Now a consumer dies holding a job and a fresh one joins: only the restarted
    # manager can give the orphaned job back.
    stack.produce(3)
    held, _ = kill_holder(stack)
    stack.up("consumer", scale_consumers=1)

    snap = wait_for(lambda: all_done(stack, 3), "all three jobs done", timeout=180, every=1)
    done_exactly_once(snap)
    for orphan in held:
        job = next(j for j in snap["jobs"] if j["id"] == orphan["id"])
        assert "rescue" in job["actions"], job
    metrics = stack.exec_python(
        manager,
        "import urllib.request; print(urllib.request.urlopen("
        "'http://127.0.0.1:9100/metrics', timeout=5).read().decode())",
    )
    assert "pq_manager_is_leader 1.0" in metrics
    recovered = f'pq_stalled_jobs_recovered_total{{reason="lease_expired"}} {len(held)}.0'
    assert recovered in metrics


def test_stack_stop_and_start_loses_nothing(stack: Stack) -> None:
    stack.up("manager", "consumer", scale_consumers=2)
    stack.produce(8)
    wait_for(lambda: processing_job(stack), "a job being processed", timeout=60)

    stack.compose("stop", timeout=120)  # SIGTERM to every container, as on a host reboot
    assert stack.containers("consumer") == [] and stack.containers("manager") == []
    snap = stack.snapshot()  # read with a one-off container: the stack is down
    assert len(snap["jobs"]) == 8
    # graceful shutdown: every job finished or given back, none left held by a lease
    assert {j["status"] for j in snap["jobs"]} <= {"pending", "done"}, snap["jobs"]

    stack.compose("start")
    snap = wait_for(lambda: all_done(stack, 8), "all eight jobs done", timeout=120, every=1)
    done_exactly_once(snap)
    doctor = stack.compose("run", "--rm", "--no-deps", "-T", "manager", "pq", "doctor", timeout=120)
    assert doctor.returncode == 0


def test_five_scaled_consumers_share_the_work(stack: Stack) -> None:
    stack.up("manager", "consumer", "prometheus", scale_consumers=5)
    consumers = stack.containers("consumer")
    assert len(consumers) == 5
    wait_for(
        lambda: (
            len({c["id"] for c in stack.snapshot()["consumers"] if c["state"] in ("idle", "busy")})
            == 5
        ),
        "five consumers registered",
        timeout=60,
    )
    stack.produce(20)

    snap = wait_for(lambda: all_done(stack, 20), "all twenty jobs done", timeout=120, every=1)
    done_exactly_once(snap)
    hosts = {stack.inspect(c)["Config"]["Hostname"] for c in consumers}
    completers = {j["completed_by"][0].split("-")[0] for j in snap["jobs"]}
    assert completers == hosts, (completers, hosts)  # each of the five completed some
    assert len({c["id"] for c in snap["consumers"]}) == 5  # five distinct registered ids

    # Prometheus found and scrapes every replica through DNS, with the repo's config.
    [prometheus] = stack.containers("prometheus")
    port = stack.inspect(prometheus)["NetworkSettings"]["Ports"]["9090/tcp"][0]["HostPort"]
    query = (
        "http://127.0.0.1:%s/api/v1/query?query=count(up%%7Bjob%%3D%%22consumer%%22%%7D%%3D%%3D1)"
    )

    def consumers_scraped() -> bool:
        with urllib.request.urlopen(query % port, timeout=10) as response:
            result = json.load(response)["data"]["result"]
        return bool(result) and result[0]["value"][1] == "5"

    wait_for(consumers_scraped, "Prometheus scraping five consumers", timeout=90, every=2)
