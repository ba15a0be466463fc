"""The stack's one shared database, whatever the host's PQ_DB says.

* ``make stack-local``, the command users type, with a relative ``PQ_DB`` in the
  environment (as the Makefile itself used to export): every container opens
  ``/data/queue.db`` and the producer service's jobs are completed by the consumers.
* A relative SQLite path given to the containers on purpose (``PQ_STACK_DB``) is refused
  at start: a non-zero exit and one clear line, never a healthy-looking private queue.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.containers.conftest import Stack, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.slow, pytest.mark.timeout(900)]

SHARED_DB = "/data/queue.db"


def container_env(stack: Stack, container: str) -> dict[str, str]:
    pairs = (item.split("=", 1) for item in stack.inspect(container)["Config"]["Env"])
    return dict(pairs)


def test_make_stack_local_shares_one_database_despite_a_relative_host_pq_db(
    stack: Stack,
) -> None:
    assert stack.env["PQ_DB"] == "var/queue.db"  # what leaked into every container before
    stack.env["PQ_PRODUCER_INTERVAL"] = "1"
    result = subprocess.run(
        ["make", "--no-print-directory", "stack-local"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    services = ("producer", "consumer", "manager", "admin", "ops")
    containers = {s: stack.containers(s) for s in services}
    assert len(containers["consumer"]) == 5, containers
    for service, ids in containers.items():
        for container in ids:
            assert container_env(stack, container)["PQ_DB"] == SHARED_DB, service

    # The producer service enqueues, the five consumers (work 7-15 s) complete: all of
    # them on the one database, which is where the consumers registered too.
    def jobs_done() -> dict[str, Any] | None:
        snap = stack.snapshot()
        done = [j for j in snap["jobs"] if j["status"] == "done"]
        return snap if len(done) >= 3 else None

    snap = wait_for(jobs_done, "three jobs done on the shared database", timeout=120, every=2)
    live = {c["id"] for c in snap["consumers"] if c["state"] in ("idle", "busy")}
    assert len(live) == 5, snap["consumers"]
    [consumer, *_] = containers["consumer"]
    for job in (j for j in snap["jobs"] if j["status"] == "done"):
        assert len(job["completed_by"]) == 1, job
        text = stack.read_job_file(consumer, job["data"])
        assert f"job={job['id']} " in text + " ", (job, text)  # the completion line


@pytest.mark.parametrize("service", ["consumer", "manager", "admin"])
def test_a_relative_container_database_is_refused_at_start(stack: Stack, service: str) -> None:
    stack.env["PQ_STACK_DB"] = "var/queue.db"
    result = stack.compose("run", "--rm", "--no-deps", "-T", service, check=False, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    lines += [line for line in result.stderr.splitlines() if "refused to start" in line]
    refusals = [line for line in lines if "refused to start" in line]
    assert len(refusals) == 1, lines
    assert "queue database 'var/queue.db' is a relative SQLite path" in refusals[0]
    assert "/home/pq/var/queue.db" in refusals[0]  # the private file it would have been
    assert "PQ_STACK_DB" in refusals[0]  # and what to set instead
