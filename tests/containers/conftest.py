"""Real Docker for the container tier, driven through testcontainers' compose support.

The session fixture runs ``deploy/scripts/docker-up.sh`` (starts dockerd if needed, makes
or loads the cached debootstrap base and a Prometheus image), fills the wheelhouse on the
host and builds the pq images from the local base with ``docker compose build`` (the
Compose v2 CLI that ``deploy/scripts/ensure-system.sh`` installs, as users run it).

Each test gets its own compose project: a testcontainers ``DockerCompose`` on the
repository's compose.yaml (plus compose.test.yaml's short timings), configured the way a
user configures theirs, through an env file (``--env-file``: what ``.env`` is to
``docker compose``) with a unique project name, random host ports and the images under
test. testcontainers starts it, lists its containers, runs commands in them and takes it
down with its volumes whatever happens; single containers (kill one replica, read its
restart count) go through the Docker API client testcontainers wraps.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from testcontainers.compose import DockerCompose
from testcontainers.core.docker_client import DockerClient

from tests.conftest import ROOT, require

SCRIPTS = ROOT / "deploy" / "scripts"
COMPOSE_FILE = ROOT / "compose.yaml"
TEST_OVERRIDE = Path(__file__).with_name("compose.test.yaml")
# Images and the build project are named after this checkout: a test run of another
# checkout (a second worktree) on the same Docker daemon builds and tags its own images,
# so it can never replace the images this run is testing between two of its tests.
CHECKOUT = hashlib.sha256(str(ROOT).encode()).hexdigest()[:8]
IMAGE_PREFIX = os.environ.get("PQ_CI_IMAGE_PREFIX", f"pq-ci-test-{CHECKOUT}")
PQ_SERVICES = ("producer", "consumer", "manager", "admin")
# A relative host PQ_DB, as a shell (or the Makefile once) sets for the local run: every
# stack here runs with it in its environment, so each container test is also a test that
# the containers open the one database on their volume (compose reads PQ_STACK_DB only).
HOST_PQ_DB = "var/queue.db"

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
            "done_transitions": sum(1 for e in events if e.to_status.value == "done"),
            "events": [[e.action, e.at, e.actor] for e in events],
        })
    if page.next_cursor is None:
        break
    before = page.next_cursor
consumers = [{"id": c.id, "state": c.state, "jobs_done": c.jobs_done} for c in q.consumers()]
print(json.dumps({"jobs": jobs, "consumers": consumers, "doctor": q.doctor()}))
"""

METRICS_CODE = (
    "import sys, urllib.request; print(urllib.request.urlopen("
    "'http://127.0.0.1:%s/metrics' % sys.argv[1], timeout=5).read().decode())"
)


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
        except (AssertionError, subprocess.SubprocessError, ValueError, OSError) as error:
            last_error, value = error, None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(
        f"timed out after {timeout}s waiting for {what} (last error: {last_error})"
    )


def write_env_file(path: Path, settings: dict[str, str]) -> None:
    """``settings`` as a compose env file; single quotes: compose takes the value literally."""
    lines = []
    for key, value in sorted(settings.items()):
        assert "'" not in value and "\n" not in value, (key, value)
        lines.append(f"{key}='{value}'")
    path.write_text("\n".join(lines) + "\n")


@dataclass
class DockerEnv:
    """What every stack needs: the compose settings (images, secrets, random ports)."""

    settings: dict[str, str]
    workdir: Path
    timings: dict[str, float] = field(default_factory=dict)


class Stack:
    """One compose project: the repository's compose.yaml (plus, by default, the test
    timings in compose.test.yaml), started and inspected through testcontainers."""

    def __init__(
        self,
        docker: DockerEnv,
        name: str,
        files: tuple[Path, ...] = (COMPOSE_FILE, TEST_OVERRIDE),
    ) -> None:
        self.name = name
        self.settings = {**docker.settings, "COMPOSE_PROJECT_NAME": name}
        self.env_file = docker.workdir / f"{name}.env"
        write_env_file(self.env_file, self.settings)
        self.compose = DockerCompose(
            context=ROOT,
            compose_file_name=[str(f) for f in files],
            env_file=str(self.env_file),
            wait=False,
        )
        self.docker = DockerClient().client

    def set(self, **settings: str) -> None:
        """Change settings for the next compose command (a user editing ``.env``)."""
        self.settings.update(settings)
        write_env_file(self.env_file, self.settings)

    def command(
        self, *args: str, timeout: float = 180, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``docker compose <files> --env-file <file> ARGS``: testcontainers' own command line."""
        return run([*self.compose.docker_compose_command(), *args], timeout=timeout, check=check)

    def up(self, *services: str, scale_consumers: int | None = None) -> None:
        """Start ``services`` (detached; the images are the session's)."""
        if scale_consumers is None:
            self.compose.services = list(services)
            self.compose.start()
            return
        # testcontainers' start() has no --scale: the same command line, one flag more.
        args = ["up", "--detach", "--no-build", "--scale", f"consumer={scale_consumers}"]
        self.command(*args, *services, timeout=300)

    def containers(self, service: str) -> list[str]:
        """Ids of ``service``'s running containers, by `docker compose ps` (testcontainers)."""
        return [
            str(c.ID)
            for c in self.compose.get_containers()
            if c.Service == service and c.State == "running"
        ]

    def inspect(self, container: str) -> dict[str, Any]:
        return dict(self.docker.api.inspect_container(container))

    def health(self, container: str) -> str:
        state = self.inspect(container)["State"]
        return str(state.get("Health", {}).get("Status", "none"))

    def host_port(self, service: str, port: int) -> int:
        """The random host port published for ``service``'s ``port``."""
        published = self.compose.get_service_port(service, port)
        assert published, (service, port)
        return int(published)

    def exec(self, container: str, *cmd: str) -> tuple[int, str, str]:
        code, (out, err) = self.docker.containers.get(container).exec_run(list(cmd), demux=True)
        return int(code), (out or b"").decode(), (err or b"").decode()

    def exec_ok(self, container: str, *cmd: str) -> str:
        code, out, err = self.exec(container, *cmd)
        assert code == 0, f"{cmd} exited {code} in {container[:12]}:\n{out[-2000:]}\n{err[-2000:]}"
        return out

    def kill(self, container: str) -> None:
        self.docker.api.kill(container)

    def remove(self, container: str) -> None:
        self.docker.api.remove_container(container, force=True)

    def logs(self, container: str) -> str:
        return bytes(self.docker.api.logs(container)).decode(errors="replace")

    def service_logs(self, *services: str) -> str:
        out, err = self.compose.get_logs(*services)
        return out + err

    def metrics(self, container: str, port: int) -> str:
        """The role's /metrics, read inside its container (its port is not published)."""
        return self.exec_ok(container, "python", "-c", METRICS_CODE, str(port))

    def produce(self, count: int) -> None:
        """``count`` job files written and enqueued by a one-off producer container."""
        self.command(
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
            out = self.exec_ok(running[0], "python", "-c", SNAPSHOT_CODE)
        else:
            out = self.command(
                "run",
                "--rm",
                "--no-deps",
                "-T",
                "manager",
                "python",
                "-c",
                SNAPSHOT_CODE,
                timeout=120,
            ).stdout
        return dict(json.loads(out.strip().splitlines()[-1]))

    def read_job_file(self, container: str, name: str) -> str:
        return self.exec_ok(container, "cat", f"/data/jobs/{name}")

    def down(self) -> None:
        """`docker compose down --volumes` through testcontainers: every service."""
        self.compose.services = None
        try:
            self.compose.stop(down=True)
        except subprocess.CalledProcessError as error:
            print(f"down of {self.name} failed: {error.stderr!r}")


@pytest.fixture(scope="session")
def docker_env(tmp_path_factory: pytest.TempPathFactory) -> DockerEnv:
    for tool in ("docker", "dockerd", "debootstrap"):
        require(shutil.which(tool) is not None, f"{tool} missing (deploy/scripts/ensure-system.sh)")
    require(os.geteuid() == 0, "dockerd and debootstrap need root")
    compose_v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    require(
        compose_v2.returncode == 0,
        "the Compose v2 CLI (`docker compose`) is missing (deploy/scripts/install-compose-v2.sh)",
    )
    # Nothing here starts single testcontainers, but if one ever does: its reaper image
    # cannot be pulled without a registry; the fixtures clean up after themselves.
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
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

    settings = {
        "BASE_IMAGE": images["BASE_IMAGE"],
        "PROMETHEUS_IMAGE": images["PROMETHEUS_IMAGE"],
        # The postgres profile's server: Debian's postgresql on the local base.
        "POSTGRES_IMAGE": images["POSTGRES_IMAGE"],
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
        "PQ_DB": HOST_PQ_DB,
    }
    docker = DockerEnv(settings, tmp_path_factory.mktemp("compose"), timings)
    started = time.monotonic()
    build = Stack(docker, f"pq-ci-build-{CHECKOUT}", files=(COMPOSE_FILE,))
    build.command("build", *PQ_SERVICES, timeout=900)
    timings["image_build"] = time.monotonic() - started
    print(f"\ncontainer tier setup: {json.dumps({k: round(v, 1) for k, v in timings.items()})}")
    return docker


@contextmanager
def new_stack(docker_env: DockerEnv, label: str, files: tuple[Path, ...]) -> Iterator[Stack]:
    stack = Stack(docker_env, f"pqtest{os.urandom(4).hex()}", files)
    try:
        yield stack
    finally:
        tail = stack.command("--ansi", "never", "logs", "--tail=40", check=False, timeout=60)
        print(f"--- last logs of {stack.name} ({label}):\n{tail.stdout[-6000:]}")
        stack.down()


@pytest.fixture
def stack(docker_env: DockerEnv, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A project of compose.yaml with the test timings of compose.test.yaml."""
    with new_stack(docker_env, request.node.name, (COMPOSE_FILE, TEST_OVERRIDE)) as stack:
        yield stack


@pytest.fixture
def user_stack(docker_env: DockerEnv, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A project of compose.yaml alone: what users run, with its own timings."""
    with new_stack(docker_env, request.node.name, (COMPOSE_FILE,)) as stack:
        yield stack
