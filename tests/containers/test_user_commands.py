"""The README's own command, run as a user runs it, and work flowing end to end.

``make stack-local`` is the README's stack without a registry: ``docker-up.sh``,
``wheelhouse.sh``, ``make-secrets.sh``, then ``docker compose up -d --build --scale
consumer=5 producer consumer manager admin ops prometheus`` — the README's ``docker
compose up --build --scale consumer=5`` less Grafana, whose image cannot be pulled
without a registry. It runs with compose.yaml alone (the stack's own timings: a job
every second from the producer service, 7-15 s of work each) and with a relative
``PQ_DB`` in its environment, which once gave every container a private queue.

Healthy containers and live targets prove nothing by themselves (that broken stack had
both): the test follows the work. Every container opens the volume's database, all
become healthy, the done count rises, each of the five consumers completes jobs, each
done job was completed once and has one completion line in its job file on the volume,
``pq doctor`` finds nothing, both consoles answer on their published ports and
Prometheus scrapes all five consumer replicas.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.containers.conftest import HOST_PQ_DB, Stack, wait_for

# 900 s: the first test also pays for the session setup (debootstrap, wheels, image builds).
pytestmark = [pytest.mark.acceptance, pytest.mark.slow, pytest.mark.timeout(900)]

SHARED_DB = "/data/queue.db"
PQ_ROLES = ("producer", "consumer", "manager", "admin", "ops")


def container_env(stack: Stack, container: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in stack.inspect(container)["Config"]["Env"])
    return dict(pairs)


def done_jobs(snapshot: dict[str, Any]) -> list[dict[str, Any]]:
    return [j for j in snapshot["jobs"] if j["status"] == "done"]


def prometheus_query(port: int, expr: str) -> list[Any]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        return list(json.load(response)["data"]["result"])


def test_make_stack_local_runs_work_through_five_consumers(user_stack: Stack) -> None:
    stack = user_stack
    env = {**os.environ, **stack.settings, "PQ_PRODUCER_INTERVAL": "1"}
    # The images' build argument, not the user's shell: should make's own `setup` run
    # (a pyproject changed since the venv was made), it installs from PyPI as for users.
    env.pop("PIP_NO_INDEX")
    assert env["PQ_DB"] == HOST_PQ_DB  # what leaked into every container before
    started = time.monotonic()
    result = subprocess.run(
        ["make", "--no-print-directory", "stack-local"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"make stack-local returned after {time.monotonic() - started:.1f}s")

    containers = {s: stack.containers(s) for s in (*PQ_ROLES, "prometheus")}
    assert {s: len(ids) for s, ids in containers.items()} == {
        "producer": 1,
        "consumer": 5,
        "manager": 1,
        "admin": 1,
        "ops": 1,
        "prometheus": 1,
    }
    for service in PQ_ROLES:
        for container in containers[service]:
            env_in = container_env(stack, container)
            assert env_in["PQ_DB"] == SHARED_DB and env_in["PQ_IN_CONTAINER"] == "1", service
    every = [c for ids in containers.values() for c in ids]
    wait_for(
        lambda: all(stack.health(c) == "healthy" for c in every),
        "every container healthy",
        timeout=120,
        every=1,
    )
    print(f"ten containers healthy {time.monotonic() - started:.1f}s after make stack-local")

    # The producer service enqueues, the five consumers complete: all on the one database.
    hosts = {stack.inspect(c)["Config"]["Hostname"] for c in containers["consumer"]}

    def each_consumer_completed() -> dict[str, Any] | None:
        snap = stack.snapshot()
        completers = {j["completed_by"][0].split("-")[0] for j in done_jobs(snap)}
        return snap if completers == hosts else None

    first = wait_for(each_consumer_completed, "each consumer completing a job", 120, every=2)
    # ...and the work keeps flowing: five more done since.
    snap = wait_for(
        lambda: (s := stack.snapshot()) and len(done_jobs(s)) >= len(done_jobs(first)) + 5 and s,
        "the done count rising by five",
        timeout=90,
        every=2,
    )
    print(f"{len(done_jobs(snap))} jobs done {time.monotonic() - started:.1f}s after the start")
    live = {c["id"] for c in snap["consumers"] if c["state"] in ("idle", "busy")}
    assert len(live) == 5 and {c.split("-")[0] for c in live} == hosts, snap["consumers"]
    assert snap["doctor"] == [], snap["doctor"]
    [consumer, *_] = containers["consumer"]
    for job in done_jobs(snap):
        assert len(job["completed_by"]) == 1, job
        text = stack.read_job_file(consumer, job["data"])
        lines = [line for line in text.splitlines() if f" job={job['id']} " in f" {line} "]
        assert len(lines) == 1, (job, text)  # its completion line, written once

    # Both consoles answer on their random host ports, from the host.
    for service, port in (("admin", 8501), ("ops", 8502)):
        url = f"http://127.0.0.1:{stack.host_port(service, port)}/_stcore/health"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200, service

    # Prometheus (the repo's config) found every replica through DNS and scrapes it.
    port = stack.host_port("prometheus", 9090)

    def five_consumers_scraped() -> bool:
        result = prometheus_query(port, 'count(up{job="consumer"} == 1)')
        return bool(result) and result[0]["value"][1] == "5"

    wait_for(five_consumers_scraped, "Prometheus scraping five consumers", timeout=90, every=2)

    def consoles_scraped() -> bool:
        result = prometheus_query(port, "pq_console_login_failures_total")
        return {r["metric"].get("job") for r in result} >= {"admin", "ops"}

    # The consoles' own metrics (logins, lockouts) reach Prometheus too.
    wait_for(consoles_scraped, "Prometheus scraping both consoles", timeout=90, every=2)
    down = prometheus_query(port, "up == 0")
    assert down == [], down
