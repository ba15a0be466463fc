"""The README's run command: supervisord with the repository's configuration.

`make run` runs `supervisord -c deploy/supervisord.conf` from the repository, whose
paths are all relative to the file (`%(here)s/../var`, `../logs`). Here the very same
file is reached through a symlink in a temporary directory, so `%(here)s` - and with it
var/, logs/ and supervisor's socket - point into that directory instead of the repo.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, VENV_BIN
from tests.support import free_port, wait_for

QUEUE_PROGRAMS = ("consumer:consumer-0", "consumer:consumer-1", "manager", "producer")


def program_states(ctl: list[str], env: dict[str, str]) -> dict[str, str]:
    result = subprocess.run([*ctl, "status"], capture_output=True, text=True, env=env, timeout=30)
    states = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            states[parts[0]] = parts[1]
    return states


def program_pids(ctl: list[str], env: dict[str, str]) -> dict[str, int]:
    result = subprocess.run([*ctl, "status"], capture_output=True, text=True, env=env, timeout=30)
    pids = {}
    for line in result.stdout.splitlines():
        parts = line.replace(",", " ").split()
        if len(parts) >= 4 and parts[1] == "RUNNING" and parts[2] == "pid":
            pids[parts[0]] = int(parts[3])
    return pids


@pytest.mark.slow
def test_the_readme_run_command_brings_up_the_system(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    conf = tmp_path / "deploy" / "supervisord.conf"
    conf.symlink_to(ROOT / "deploy" / "supervisord.conf")
    (tmp_path / "var" / "jobs").mkdir(parents=True)  # what `make run` creates
    (tmp_path / "logs").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")}
    env.update(
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",  # as `make run` does
        PQ_INTERVAL="0.3",
        PQ_WORK_MIN="0",
        PQ_WORK_MAX="0.2",
        # Free of fixed ports, so the test runs beside a developer's `make run`.
        PQ_MANAGER_METRICS_PORT="0",
        PQ_PRODUCER_METRICS_PORT="0",
        PQ_CONSUMER_METRICS_PORT_BASE="0",
        PQ_ADMIN_CONSOLE_PORT=str(free_port()),
        PQ_OPS_CONSOLE_PORT=str(free_port()),
    )
    ctl = [str(VENV_BIN / "supervisorctl"), "-c", str(conf)]
    supervisord = subprocess.Popen(
        [str(VENV_BIN / "supervisord"), "-c", str(conf)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: all(program_states(ctl, env).get(p) == "RUNNING" for p in QUEUE_PROGRAMS),
            60,
            "producer, consumers and manager RUNNING",
        )
        states = program_states(ctl, env)
        assert {"console-admin", "console-ops"} <= set(states)  # listed, whatever their state

        def done() -> int:
            stats = subprocess.run(
                [
                    str(VENV_BIN / "pq"),
                    "--db",
                    str(tmp_path / "var" / "queue.db"),
                    "stats",
                    "--json",
                ],
                capture_output=True,
                text=True,
                env=env,
                timeout=30,
            )
            return int(json.loads(stats.stdout)["counts"]["done"]) if stats.returncode == 0 else 0

        wait_for(lambda: done() >= 3, 60, "jobs to flow (pq stats: done > 0)")
        assert "completed job=" in (tmp_path / "logs" / "consumer.log").read_text()
        assert (tmp_path / "logs" / "manager.log").exists()
        # Each line is stored once: supervisor's capture of stderr gets WARNING and above.
        captured = (tmp_path / "logs" / "supervisor-consumer-1.log").read_text()
        assert "completed job=" not in captured

        # autorestart: a SIGKILLed consumer comes back with a new pid.
        killed = program_pids(ctl, env)["consumer:consumer-0"]
        os.kill(killed, signal.SIGKILL)
        wait_for(
            lambda: program_pids(ctl, env).get("consumer:consumer-0", killed) != killed,
            60,
            "supervisor to restart the killed consumer",
        )

        restart = subprocess.run(
            [*ctl, "restart", "consumer:*"], capture_output=True, text=True, env=env, timeout=120
        )
        assert restart.returncode == 0, restart.stdout + restart.stderr
        wait_for(
            lambda: program_states(ctl, env).get("consumer:consumer-0") == "RUNNING",
            30,
            "consumers back after restart",
        )

        shutdown = subprocess.run(
            [*ctl, "shutdown"], capture_output=True, text=True, env=env, timeout=60
        )
        assert shutdown.returncode == 0, shutdown.stdout + shutdown.stderr
        assert supervisord.wait(90) == 0
        log = (tmp_path / "logs" / "supervisord.log").read_text()
        for program in ("producer", "manager", "consumer-0", "consumer-1"):
            assert f"stopped: {program} (exit status 0)" in log
        doctor = subprocess.run(
            [str(VENV_BIN / "pq"), "--db", str(tmp_path / "var" / "queue.db"), "doctor"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert doctor.returncode == 0, doctor.stderr
    finally:
        if supervisord.poll() is None:
            supervisord.send_signal(signal.SIGTERM)
            try:
                supervisord.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(supervisord.pid, signal.SIGKILL)  # supervisord and its programs
                supervisord.wait(10)
