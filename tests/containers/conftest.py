"""Real Docker for the container tier: dockerd, a local base image, images, compose stacks.

The session fixture runs ``deploy/scripts/docker-up.sh`` (starts dockerd if needed, makes
or loads the cached debootstrap base and a Prometheus image), fills the wheelhouse on the
host and builds the pq images from the local base. Each test gets its own compose project
(unique name, random host ports), torn down with its volumes whatever happens.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, require

SCRIPTS = ROOT / "deploy" / "scripts"
TEST_OVERRIDE = Path(__file__).with_name("compose.test.yaml")
# Images and the build project are named after this checkout: a test run of another
# checkout (a second worktree) on the same Docker daemon builds and tags its own images,
# so it can never replace the images this run is testing between two of its tests.
CHECKOUT = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
IMAGE_PREFIX = os.environ.get("PQ_CI_IMAGE_PREFIX", f"pq-ci-test-{CHECKOUT}")
PQ_SERVICES = ("producer", "consumer", "manager", "admin")

# Run inside a pq container: every job with its history, and the consumers table, as JSON.
SNAPSHOT_CODE = r"""
import json
from pqcore import open_queue
q = open_queue(create=False)
jobs, before = [], None
while True:
    page = q.list_jobs(limit=500, before_id=before)
    for job in page.jobs:
        events = q.history(job.id)
        jobs.append({
            "id": job.id, "status": job.status.value, "data": job.data,
            "consumer_id": job.consumer_id,
            "actions": [e.action for e in events],
            "completed_by": [e.actor for e in events if e.action == "complete"],
        })
    if page.next_cursor is None:
        break
    before = page.next_cursor
consumers = [{"id": c.id, "state": c.state, "jobs_done": c.jobs_done} for c in q.consumers()]
print(json.dumps({"jobs": jobs, "consumers": consumers, "doctor": q.doctor()}))
"""


def run(
    cmd: list[str],
    *,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    check: bool = True,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        )
    return result


def wait_for(condition: Callable[[], Any], what: str, timeout: float, every: float = 0.5) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = condition()
        except (AssertionError, subprocess.SubprocessError, ValueError) as error:
            last_error, value = error, None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last error: {last_error})"
    )


@dataclass
class DockerEnv:
    """What every stack needs: the compose environment (images, secrets, random ports)."""

    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="session")
def docker_env(tmp_path_factory: pytest.TempPathFactory) -> DockerEnv:
    for tool in ("docker", "dockerd", "docker-compose", "debootstrap"):
        require(shutil.which(tool) is not None, f"{tool} missing (deploy/scripts/ensure-system.sh)")
    require(os.geteuid() == 0, "dockerd and debootstrap need root")
    timings: dict[str, float] = {}

    started = time.monotonic()
    up = run(["bash", str(SCRIPTS / "docker-up.sh")], timeout=600)
    images = dict(line.split("=", 1) for line in up.stdout.split() if "=" in line)
    timings["docker_up"] = time.monotonic() - started

    started = time.monotonic()
    run(["bash", str(SCRIPTS / "wheelhouse.sh")], timeout=600)
    timings["wheelhouse"] = time.monotonic() - started

    secrets_dir = tmp_path_factory.mktemp("secrets")
    run(["bash", str(SCRIPTS / "make-secrets.sh"), "--force", str(secrets_dir)], timeout=60)

    env = {
        **os.environ,
        "BASE_IMAGE": images["BASE_IMAGE"],
        "PROMETHEUS_IMAGE": images["PROMETHEUS_IMAGE"],
        "PIP_NO_INDEX": "1",
        "PQ_IMAGE_PREFIX": IMAGE_PREFIX,
        "PQ_CONSOLE_USERS_FILE": str(secrets_dir / "console-users.json"),
        "GRAFANA_ADMIN_PASSWORD_FILE": str(secrets_dir / "grafana-admin-password"),
        "POSTGRES_PASSWORD_FILE": str(secrets_dir / "postgres-password"),
        # 0: Docker picks free host ports, so parallel runs and other servers never collide.
        "PQ_ADMIN_PORT": "0",
        "PQ_OPS_PORT": "0",
        "PQ_PROMETHEUS_PORT": "0",
        "PQ_GRAFANA_PORT": "0",
        "COMPOSE_PROJECT_NAME": f"pq-ci-build-{CHECKOUT}",
    }
    # A relative host PQ_DB, as a shell or an old Makefile sets for the local run: every
    # stack here must still open the one database on its volume (compose reads
    # PQ_STACK_DB, never PQ_DB), so each container test is also a test of that.
    env["PQ_DB"] = "var/queue.db"
    env.pop("PQ_STACK_DB", None)
    started = time.monotonic()
    run(["docker-compose", "-f", "compose.yaml", "build", *PQ_SERVICES], env=env, timeout=900)
    timings["image_build"] = time.monotonic() - started
    print(f"\ncontainer tier setup: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
    return DockerEnv(env, timings)


class Stack:
    """One compose project of the repository's compose.yaml plus the test timings."""

    def __init__(self, docker: DockerEnv, name: str) -> None:
        self.name = name
        self.env = {**docker.env, "COMPOSE_PROJECT_NAME": name}

    def compose(
        self, *args: str, timeout: float = 180, check: bool = True, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["docker-compose", "-f", "compose.yaml", "-f", str(TEST_OVERRIDE), *args]
        return run(cmd, env=self.env, timeout=timeout, check=check)

    def up(self, *services: str, scale_consumers: int | None = None) -> None:
        args = ["up", "-d", "--no-build"]
        if scale_consumers is not None:
            args += ["--scale", f"consumer={scale_consumers}"]
        self.compose(*args, *services)

    def containers(self, service: str, *, running_only: bool = True) -> list[str]:
        ids = self.compose("ps", "-q", service).stdout.split()
        if not running_only:
            return ids
        return [c for c in ids if self.inspect(c)["State"]["Running"]]

    def inspect(self, container: str) -> dict[str, Any]:
        return json.loads(run(["docker", "inspect", container]).stdout)[0]

    def health(self, container: str) -> str:
        state = self.inspect(container)["State"]
        return str(state.get("Health", {}).get("Status", "none"))

    def produce(self, count: int) -> None:
        """``count`` job files written and enqueued by a one-off producer container."""
        self.compose(
            "run",
            "--rm",
            "--no-deps",
            "-T",
            "producer",
            "pq",
            "producer",
            "--count",
            str(count),
            "--interval",
            "0",
            "--metrics-port",
            "0",
            "--log-dir=",
            timeout=120,
        )

    def snapshot(self) -> dict[str, Any]:
        """Jobs, histories, consumers and doctor's findings, read inside a pq container."""
        running = [c for s in ("manager", "consumer") for c in self.containers(s)]
        if running:
            out = run(["docker", "exec", running[0], "python", "-c", SNAPSHOT_CODE], timeout=60)
        else:
            out = self.compose(
                "run",
                "--rm",
                "--no-deps",
                "-T",
                "manager",
                "python",
                "-c",
                SNAPSHOT_CODE,
                timeout=120,
            )
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))

    def exec_python(self, container: str, code: str) -> str:
        return run(["docker", "exec", container, "python", "-c", code], timeout=60).stdout

    def read_job_file(self, container: str, name: str) -> str:
        return run(["docker", "exec", container, "cat", f"/data/jobs/{name}"], timeout=30).stdout

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "-t", "5", timeout=180, check=False)


@pytest.fixture
def stack(docker_env: DockerEnv) -> Iterator[Stack]:
    stack = Stack(docker_env, f"pqtest{secrets.token_hex(4)}")
    try:
        yield stack
    finally:
        logs = stack.compose("logs", "--no-color", "--tail=40", check=False, timeout=60)
        print(f"--- last logs of {stack.name}:\n{logs.stdout[-6000:]}")
        stack.down()
