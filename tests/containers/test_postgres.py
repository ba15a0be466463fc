"""The compose ``postgres`` profile across "hosts": five consumer containers and the
manager on one PostgreSQL server container, each container with a clock of its own.

The server is Debian's postgresql on the local base (deploy/docker/postgres, what
``POSTGRES_IMAGE`` selects where the official image cannot be pulled); the roles open it
by ``PQ_STACK_DB`` and keep only the job files on the shared volume (no SQLite file).
libfaketime, preloaded in every container that tells time (compose.postgres.yaml),
reads each container's clock offset from a file the test writes. One stack, in phases:

1. Skew: the consumers' clocks are -7, -3, +2, +5 and +9 minutes off, the manager's +4:
   work flows (the completion lines carry the consumers' wrong clocks), no live job is
   rescued, and a failed job is retried no earlier than its backoff of server time.
2. A step of +1 hour on every consumer host and the manager's, while jobs run: the server's
   clock decides every lease, so nothing is rescued.
3. A step of +1 hour of the database host's clock, while jobs run: every lease looks an
   hour overdue at once; the manager rescues an expired lease only after a second look
   half a lease later (its monotonic clock), by which time every live holder renewed:
   nothing is rescued (pqcore.rescue.ConfirmedRescue).
4. Faults under load: the PostgreSQL container ``docker kill``ed and started again; all of
   pq's server connections terminated (``pg_terminate_backend``); the manager and two
   consumers SIGKILLed (their main process, as ``docker kill`` does; ``docker kill``
   itself marks a container stopped by hand, which the restart policy then respects).

Then every job is done exactly once (one done transition, one completion line in its
file), every service is back without a human — the ones not killed never restarted (they
reconnected), the killed ones restarted once — and ``pq doctor`` is clean.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.containers.conftest import (
    COMPOSE_FILE,
    IMAGE_PREFIX,
    TEST_OVERRIDE,
    DockerEnv,
    Stack,
    new_stack,
    run,
    wait_for,
)

# 900 s: the first test of a session also pays for the session setup (images).
pytestmark = [pytest.mark.acceptance, pytest.mark.slow, pytest.mark.timeout(900)]

HERE = Path(__file__).parent
POSTGRES_OVERRIDE = HERE / "compose.postgres.yaml"
FAKETIME_DOCKERFILE = HERE / "faketime.Dockerfile"
CLOCK_FILE = "/tmp/pq-clock-offset"  # FAKETIME_TIMESTAMP_FILE in compose.postgres.yaml
CONSUMER_OFFSETS = (-420, -180, 120, 300, 540)  # seconds: the consumers' hosts
MANAGER_OFFSET = 240
HOUR = 3600
LEASE = 6.0  # compose.test.yaml: PQ_LEASE_SECONDS (heartbeat every 2 s)
MIN_RETRY_DELAY = 5.0  # PQ_BACKOFF_BASE_SECONDS=10, jittered down by at most half

# Every job file on the volume, by name, read in one exec.
READ_JOB_FILES = (
    "import json, pathlib; print(json.dumps({p.name: p.read_text()"
    " for p in pathlib.Path('/data/jobs').iterdir() if p.is_file()}))"
)
# The client address of every connection pq holds (one line each), and the same while
# terminating them all.
PQ_CLIENTS = (
    "SELECT host(client_addr) FROM pg_stat_activity"
    " WHERE usename = 'pq' AND pid <> pg_backend_pid() AND client_addr IS NOT NULL"
)
TERMINATE_PQ = f"{PQ_CLIENTS} AND pg_terminate_backend(pid)"


def offset_spec(seconds: int) -> str:
    return f"{seconds:+d}s"  # libfaketime's relative offset: "+300s", "-420s"


@pytest.fixture(scope="module")
def clock_images(docker_env: DockerEnv, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The session's consumer, manager and PostgreSQL images plus libfaketime."""
    spec = importlib.util.find_spec("libfaketime")
    require(spec is not None, "the libfaketime package is missing (make setup: the dev extra)")
    assert spec is not None and spec.submodule_search_locations
    library = Path(spec.submodule_search_locations[0]) / "vendor/libfaketime/src/libfaketime.so.1"
    assert library.is_file(), library
    context = tmp_path_factory.mktemp("faketime")
    shutil.copy(library, context / "libfaketime.so.1")
    bases = {
        "consumer": f"{IMAGE_PREFIX}-consumer:latest",
        "manager": f"{IMAGE_PREFIX}-manager:latest",
        "postgres": docker_env.settings["POSTGRES_IMAGE"],
    }
    images = {}
    for role, base in bases.items():
        tag = f"{IMAGE_PREFIX}-{role}-faketime:latest"
        command = ["docker", "build", "-q", "-f", str(FAKETIME_DOCKERFILE)]
        run([*command, "--build-arg", f"IMAGE={base}", "-t", tag, str(context)], timeout=300)
        images[role] = tag
    return images


@pytest.fixture
def pg_stack(
    docker_env: DockerEnv, clock_images: dict[str, str], request: pytest.FixtureRequest
) -> Iterator[Stack]:
    files = (COMPOSE_FILE, TEST_OVERRIDE, POSTGRES_OVERRIDE)
    with new_stack(docker_env, request.node.name, files) as stack:
        password = Path(docker_env.settings["POSTGRES_PASSWORD_FILE"]).read_text().strip()
        stack.set(
            COMPOSE_PROFILES="postgres",
            PQ_STACK_DB=f"postgresql://pq:{password}@postgres:5432/pq",
            PQ_TEST_POSTGRES_IMAGE=clock_images["postgres"],
            PQ_TEST_CONSUMER_IMAGE=clock_images["consumer"],
            PQ_TEST_MANAGER_IMAGE=clock_images["manager"],
            # Jobs span two heartbeats or more (every 2 s), so leases are renewed mid-job.
            PQ_TEST_WORK_MIN="3",
            PQ_TEST_WORK_MAX="5",
        )
        yield stack


# ------------------------------------------------------------------ helpers


def set_clock(stack: Stack, container: str, seconds: int) -> None:
    stack.exec_ok(container, "sh", "-c", f"echo {offset_spec(seconds)} > {CLOCK_FILE}")


def clock_offset(stack: Stack, container: str) -> float:
    """The container's wall clock minus the host's, as a process started there sees it."""
    before = time.time()
    seen = float(stack.exec_ok(container, "python3", "-c", "import time; print(time.time())"))
    return seen - (before + time.time()) / 2


def wait_clock(stack: Stack, container: str, seconds: int) -> None:
    wait_for(
        lambda: abs(clock_offset(stack, container) - seconds) < 3,
        f"the clock of {container[:12]} {offset_spec(seconds)} off",
        timeout=20,
    )


def hostname(stack: Stack, container: str) -> str:
    return str(stack.inspect(container)["Config"]["Hostname"])


def address(stack: Stack, container: str) -> str:
    """The container's address on the stack's network, as PostgreSQL sees its client."""
    [network] = stack.inspect(container)["NetworkSettings"]["Networks"].values()
    return str(network["IPAddress"])


def restarts(stack: Stack, container: str) -> int:
    return int(stack.inspect(container)["RestartCount"])


def events(job: dict[str, Any], action: str) -> list[float]:
    return [at for name, at, _ in job["events"] if name == action]


def rescued(snap: dict[str, Any]) -> list[dict[str, Any]]:
    return [j for j in snap["jobs"] if events(j, "rescue")]


def processing(snap: dict[str, Any]) -> list[dict[str, Any]]:
    return [j for j in snap["jobs"] if j["status"] == "processing"]


def done_ids(snap: dict[str, Any]) -> set[int]:
    return {j["id"] for j in snap["jobs"] if j["status"] == "done"}


def enqueue(stack: Stack, container: str, payload: str) -> int:
    return int(stack.exec_ok(container, "pq", "enqueue", payload).strip())


def watch_without_rescue(stack: Stack, seconds: float, phase: str) -> dict[str, Any]:
    """Jobs keep being processed for ``seconds`` and none is rescued meanwhile."""
    deadline = time.monotonic() + seconds
    snap = stack.snapshot()
    while time.monotonic() < deadline:
        assert rescued(snap) == [], f"{phase}: a live job was rescued: {rescued(snap)}"
        time.sleep(1)
        snap = stack.snapshot()
    assert rescued(snap) == [], f"{phase}: a live job was rescued: {rescued(snap)}"
    return snap


def kill_main_process(stack: Stack, container: str) -> None:
    """SIGKILL to the container's PID 1 from the host: a crash, which the restart policy
    answers (``docker kill`` marks the container stopped by hand, which it respects)."""
    os.kill(int(stack.inspect(container)["State"]["Pid"]), signal.SIGKILL)


def progress(stack: Stack, before: set[int], what: str) -> set[int]:
    """Wait until some job not done before is done now; returns the done ids."""
    return wait_for(
        lambda: (now := done_ids(stack.snapshot())) - before and now,
        what,
        timeout=90,
        every=1,
    )


def completion_stamp(line: str) -> float:
    return dt.datetime.fromisoformat(line.split(" ", 1)[0]).timestamp()


# ------------------------------------------------------------------ the test


def test_postgres_profile_survives_kills_terminations_and_wrong_clocks(pg_stack: Stack) -> None:
    stack = pg_stack
    started = time.monotonic()
    stack.up("postgres", "manager", "consumer", scale_consumers=5)
    [server] = stack.containers("postgres")
    [manager] = stack.containers("manager")
    consumers = stack.containers("consumer")
    assert len(consumers) == 5
    offsets = dict(zip(consumers, CONSUMER_OFFSETS, strict=True))
    for container, seconds in [*offsets.items(), (manager, MANAGER_OFFSET)]:
        set_clock(stack, container, seconds)
    for container, seconds in [*offsets.items(), (manager, MANAGER_OFFSET), (server, 0)]:
        wait_clock(stack, container, seconds)
    by_host = {hostname(stack, c): seconds for c, seconds in offsets.items()}

    def five_live_consumers() -> bool:
        live = [c for c in stack.snapshot()["consumers"] if c["state"] in ("idle", "busy")]
        return len(live) == 5

    wait_for(five_live_consumers, "five consumers registered on PostgreSQL", 90, every=1)
    # No SQLite anywhere: the volume holds job files only.
    stack.exec_ok(consumers[0], "sh", "-c", "test ! -e /data/queue.db && test -d /data/jobs")
    print(f"stack up and clocks set in {time.monotonic() - started:.1f}s")

    # 1. Skewed clocks, work flowing: two jobs that fail (flaky:4 fails its first four
    # calls: one attempt with its three immediate retries), then 40 job files.
    flaky = [enqueue(stack, manager, "flaky:4") for _ in range(2)]
    stack.produce(40)
    snap = watch_without_rescue(stack, 10, "clocks minutes apart")
    skew_done = done_ids(snap)
    assert skew_done, "no job was done while the clocks were skewed"
    phase_marks = {"skew": time.monotonic() - started}

    # 2. Every consumer host and the manager's step +1 hour while jobs run.
    assert processing(snap), "no job running at the step: it proves nothing"
    for container, seconds in [*offsets.items(), (manager, MANAGER_OFFSET)]:
        set_clock(stack, container, seconds + HOUR)
    wait_clock(stack, manager, MANAGER_OFFSET + HOUR)
    snap = watch_without_rescue(stack, 2 * LEASE, "+1 h on the consumer and manager hosts")
    phase_marks["client step"] = time.monotonic() - started

    # 3. The database host's clock steps +1 hour while jobs run.
    held = processing(snap)
    assert held, "no job running at the server's step: it proves nothing"
    set_clock(stack, server, HOUR)
    wait_clock(stack, server, HOUR)
    snap = watch_without_rescue(stack, 2 * LEASE + 2, "+1 h on the database host")
    stepped = [j for j in snap["jobs"] if j["id"] in {h["id"] for h in held}]
    for job in stepped:  # the jobs held across the step went on with their holder
        assert job["status"] in ("processing", "done"), job
    phase_marks["server step"] = time.monotonic() - started

    # Retries: not before the backoff, in server time, whatever the failing consumer's
    # and the manager's clocks say (either alone would have made the retry immediate).
    for job_id in flaky:
        job = next(j for j in snap["jobs"] if j["id"] == job_id)
        [failed_at, *_] = events(job, "fail")
        retried = events(job, "schedule_retry")
        assert retried, f"the failed job {job_id} was never retried: {job}"
        assert retried[0] - failed_at >= MIN_RETRY_DELAY, job

    # 4. Faults under load: 25 more jobs, then the server killed and started again.
    stack.produce(25)
    before = done_ids(stack.snapshot())
    stack.kill(server)  # docker kill: SIGKILL to the postmaster, no shutdown checkpoint
    time.sleep(4)
    stack.docker.api.start(server)
    wait_for(lambda: stack.health(server) == "healthy", "PostgreSQL healthy again", 60)
    before = progress(stack, before, "a job done after the server's restart")
    phase_marks["server killed"] = time.monotonic() - started

    # Every connection pq holds, terminated by the server. After the restart a service
    # connects again when it next needs the database (an idle consumer once its poll
    # interval is up), so first wait until each of them holds one again: otherwise the
    # termination would miss the services that matter.
    services = {address(stack, c): c[:12] for c in (manager, *consumers)}

    def clients(query: str) -> list[str]:
        return stack.exec_ok(server, "psql", "-U", "pq", "-d", "pq", "-Atc", query).split()

    wait_for(
        lambda: set(services) <= set(clients(PQ_CLIENTS)),
        "every service connected to PostgreSQL again",
        60,
        every=1,
    )
    terminated = clients(TERMINATE_PQ)
    missed = set(services) - set(terminated)
    assert not missed, f"no connection of {[services[a] for a in missed]} was terminated"
    before = progress(stack, before, "a job done after the connections were terminated")
    phase_marks["connections terminated"] = time.monotonic() - started

    # The manager and two consumers that hold work, killed.
    holders = {j["consumer_id"].split("-")[0] for j in processing(stack.snapshot())}
    victims = [c for c in consumers if hostname(stack, c) in holders][:2]
    victims += [c for c in consumers if c not in victims][: 2 - len(victims)]
    for container in (manager, *victims):
        kill_main_process(stack, container)
    for container in (manager, *victims):
        wait_for(
            lambda c=container: restarts(stack, c) >= 1 and stack.inspect(c)["State"]["Running"],
            f"{container[:12]} restarted by its restart policy",
            timeout=60,
        )
    for container in (manager, *victims):  # the restarted ones keep the clock of their host
        wait_clock(stack, container, offsets.get(container, MANAGER_OFFSET) + HOUR)

    def all_done() -> dict[str, Any] | None:
        snap = stack.snapshot()
        jobs = snap["jobs"]
        return snap if len(jobs) == 67 and all(j["status"] == "done" for j in jobs) else None

    snap = wait_for(all_done, "all 67 jobs done", timeout=240, every=2)
    phase_marks["all done"] = time.monotonic() - started
    print(f"phases (s since start): {json.dumps({k: round(v) for k, v in phase_marks.items()})}")
    print(f"{len(rescued(snap))} job(s) rescued in the fault phase; {terminated} terminated")

    # Exactly once: one completion, one done transition, one line in its file.
    for job in snap["jobs"]:
        assert len(job["completed_by"]) == 1 and job["done_transitions"] == 1, job
    assert snap["doctor"] == [], snap["doctor"]
    files = json.loads(stack.exec_ok(consumers[0], "python3", "-c", READ_JOB_FILES))
    file_jobs = [j for j in snap["jobs"] if not j["data"].startswith("flaky:")]
    assert len(file_jobs) == 65
    for job in file_jobs:
        lines = [ln for ln in files[job["data"]].splitlines() if f" job={job['id']} " in ln]
        assert len(lines) == 1, (job, files[job["data"]])
        if job["id"] in skew_done:  # written before any step: the consumer's wrong clock
            [line] = lines
            host = job["completed_by"][0].split("-")[0]
            [done_at] = events(job, "complete")
            assert abs(completion_stamp(line) - done_at - by_host[host]) < 5, (line, job)

    # Back without a human: the services not killed reconnected, never restarted; the
    # killed ones restarted once; all five consumers live and working after the faults.
    for container in consumers:
        expected = 1 if container in victims else 0
        assert restarts(stack, container) == expected, (container, restarts(stack, container))
        assert stack.inspect(container)["State"]["Running"]
    assert restarts(stack, manager) == 1
    assert restarts(stack, server) == 0
    # Jobs done after the server's restart and the terminations: every consumer that
    # was not killed did some of them, on connections it opened again by itself.
    late = [j for j in snap["jobs"] if j["id"] not in before]
    workers = {j["completed_by"][0].split("-")[0] for j in late}
    survivors = {hostname(stack, c) for c in consumers if c not in victims}
    assert survivors <= workers, (survivors, workers)
    live = {c["id"].split("-")[0] for c in snap["consumers"] if c["state"] in ("idle", "busy")}
    assert live == set(by_host), snap["consumers"]
    assert "pq_manager_is_leader 1.0" in stack.metrics(manager, 9100)
    # The URL carries the password: no role's log may show it (they name the server).
    password = Path(stack.settings["POSTGRES_PASSWORD_FILE"]).read_text().strip()
    logs = stack.service_logs("consumer", "manager")
    assert "started: db=pq@postgres:5432/pq" in logs and password not in logs
    doctor = stack.exec(manager, "pq", "doctor")
    assert doctor[0] == 0, doctor
