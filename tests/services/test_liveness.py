"""Liveness: `/healthz` follows the main loop, `/metrics` keeps answering regardless.

Real `pq` processes on a temporary SQLite database, each on a free metrics port. The
wedge is real: a test handler holds the database's write lock, so the consumer's main
loop is stuck in the handler and its lease heartbeats cannot be written.
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pqcore import JobState
from services.common.liveness import Liveness
from services.common.logs import setup_logging
from services.common.metrics import health_app
from services.common.settings import add_common_settings
from tests.backends import FakeClock, sqlite_backend
from tests.services.system import System
from tests.support import free_port, wait_for

TIMEOUT = 2.0  # --liveness-timeout of every process here: above the 1 s beat slice
HANDLERS = "tests.services.handlers_for_tests"


@pytest.fixture
def sqlite_system(tmp_path: Path) -> Iterator[System]:
    with sqlite_backend(tmp_path) as handle:
        system = System(tmp_path, handle)
        try:
            yield system
        finally:
            system.stop_all()


def get(port: int, path: str) -> tuple[int, str]:
    """HTTP status and body; status 0 while nothing listens yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def answered(port: int, status: int | None = None) -> tuple[int, str] | None:
    """The /healthz reply once the endpoint answers (with ``status``, if given), else None."""
    reply = get(port, "/healthz")
    return reply if reply[0] and status in (None, reply[0]) else None


def healthz_statuses(port: int, seconds: float) -> list[int]:
    """Every /healthz status seen while probing for ``seconds`` (a probe every 0.1 s)."""
    statuses = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        statuses.append(get(port, "/healthz")[0])
        time.sleep(0.1)
    return statuses


@pytest.mark.parametrize(
    ("role", "args"),
    [("manager", ()), ("producer", ("--interval", 30))],
    ids=["manager", "producer"],
)
def test_idle_service_stays_alive_past_the_timeout(
    sqlite_system: System, role: str, args: tuple[str | float, ...]
) -> None:
    """The manager sleeps 5 s between cycles and this producer 30 s between jobs, both
    longer than the 2 s timeout: their waits beat while they wait."""
    port = free_port()
    sqlite_system.start(role, *args, "--liveness-timeout", TIMEOUT, PQ_METRICS_PORT=port)
    status, body = wait_for(lambda: answered(port), 30, f"{role} /healthz") or (0, "")
    assert status == 200, body
    assert json.loads(body)["status"] == "ok"
    assert set(healthz_statuses(port, 3 * TIMEOUT)) == {200}
    status, metrics = get(port, "/metrics")
    assert status == 200 and "pq_service_last_beat_timestamp_seconds" in metrics


def test_consumer_long_job_is_alive_and_wedged_loop_is_not(sqlite_system: System) -> None:
    system = sqlite_system
    port = free_port()
    consumer = system.start(
        "consumer",
        "--lease",
        1.5,  # a lease heartbeat every 0.5 s
        "--liveness-timeout",
        TIMEOUT,
        PQ_METRICS_PORT=port,
        PQ_HANDLER_MODULES=HANDLERS,
        PQ_LOG_DIR="",  # no log file (checked at the end)
    )
    wait_for(lambda: get(port, "/healthz")[0] == 200, 30, "consumer /healthz 200")

    # Idle past the timeout: wait_for_jobs is bounded, so the loop keeps beating.
    assert set(healthz_statuses(port, 2 * TIMEOUT)) == {200}

    # A legitimate long job (2.5x the timeout, no cooperation with anything): alive,
    # because its lease heartbeats keep succeeding.
    long_job = system.queue.enqueue(f"stubborn:{2.5 * TIMEOUT}")
    wait_for(
        lambda: system.queue.get(long_job.id).status is JobState.PROCESSING, 30, "long job claimed"
    )
    statuses = []
    while system.queue.get(long_job.id).status is JobState.PROCESSING:
        statuses.append(get(port, "/healthz")[0])
        assert len(statuses) < 600, "the long job never finished"
        time.sleep(0.1)
    assert system.queue.get(long_job.id).status is JobState.DONE
    assert len(statuses) > 10 * TIMEOUT  # probed across more than the timeout
    assert set(statuses) == {200}

    # A wedged main loop: no beat from the loop, no heartbeat can be written.
    wedged = system.queue.enqueue("wedge:120")
    status, body = wait_for(lambda: answered(port, 503), 60, "/healthz 503") or (0, "")
    report = json.loads(body)
    assert report["status"] == "stalled" and report["last_beat_seconds_ago"] >= TIMEOUT
    assert "has not beaten for" in report["error"]
    status, metrics = get(port, "/metrics")
    assert status == 200 and "pq_consumer_busy 1.0" in metrics  # /metrics still answers

    # Unwedged, it is alive again (and nothing was lost: the job is settled or rescuable).
    (system.jobs_dir / f"release-{wedged.id}").touch()
    wait_for(lambda: get(port, "/healthz")[0] == 200, 90, "/healthz 200 after the wedge")
    assert consumer.alive()
    assert not (system.log_dir / "consumer.log").exists(), "PQ_LOG_DIR='' must disable the file"


def test_consumer_refuses_a_timeout_below_its_heartbeat_interval(sqlite_system: System) -> None:
    proc = sqlite_system.run("consumer", "--lease", 30, "--liveness-timeout", 5, timeout=60)
    assert proc.popen.returncode != 0
    assert "liveness-timeout (5.0s) must exceed the heartbeat interval" in proc.text()


def test_liveness_age_and_health_body() -> None:
    clock = FakeClock()
    liveness = Liveness(timeout=10, clock=clock)
    app = health_app("consumer", liveness)
    replies: list[str] = []

    def call() -> dict[str, object]:
        body = b"".join(app({"PATH_INFO": "/healthz"}, lambda status, _h: replies.append(status)))
        return dict(json.loads(body))

    clock.advance(10)
    assert liveness.alive() and call()["status"] == "ok" and replies[-1].startswith("200")
    clock.advance(5)
    body = call()
    assert replies[-1].startswith("503") and body["last_beat_seconds_ago"] == 15.0
    liveness.beat()
    assert liveness.age() == 0 and call()["status"] == "ok"


def parse_common(**env: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_common_settings(parser, metrics_port=9102)
    return parser.parse_args([])


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "logs"), ("", ""), ("/var/log/pq", "/var/log/pq")]
)
def test_empty_pq_log_dir_disables_the_log_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str | None, expected: str
) -> None:
    monkeypatch.delenv("PQ_LOG_DIR", raising=False)
    if value is not None:
        monkeypatch.setenv("PQ_LOG_DIR", value)
    args = parse_common()
    assert args.log_dir == expected
    if value == "":
        monkeypatch.chdir(tmp_path)
        assert setup_logging("consumer", log_dir=args.log_dir) is None
        assert not any(tmp_path.iterdir())


def test_other_empty_settings_still_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PQ_METRICS_PORT", "")
    monkeypatch.setenv("PQ_LIVENESS_TIMEOUT", "")
    args = parse_common()
    assert args.metrics_port == 9102 and args.liveness_timeout == 60.0
