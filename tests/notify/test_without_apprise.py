"""An install without the notify extra (the consumer and producer images): `pq` does not
warn on every command, and what needs apprise says so once, clearly.

apprise is hidden from real `pq` subprocesses by a module of that name first on
PYTHONPATH whose import fails exactly as a missing package does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import pq_command


@pytest.fixture
def no_apprise(tmp_path: Path) -> dict[str, str]:
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "apprise.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'apprise'\", name='apprise')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")}
    env.update(PYTHONPATH=str(hide), PQ_DB=str(tmp_path / "queue.db"), PQ_LOG_DIR="")
    return env


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*pq_command(), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_the_hiding_works(no_apprise: dict[str, str]) -> None:
    """Else the tests below would pass with apprise present."""
    probe = subprocess.run(
        [sys.executable, "-c", "import apprise"], env=no_apprise, capture_output=True, text=True
    )
    assert probe.returncode == 1 and "No module named 'apprise'" in probe.stderr


def test_pq_commands_do_not_warn_without_apprise(no_apprise: dict[str, str]) -> None:
    for args in (["--help"], ["enqueue", "jobs/1.txt"], ["stats"], ["notify-test", "--help"]):
        result = run(no_apprise, *args)
        assert result.returncode == 0, result.stderr
        assert "warning" not in result.stderr and "apprise" not in result.stderr, args


def test_notify_test_without_apprise_says_what_is_missing(no_apprise: dict[str, str]) -> None:
    result = run(no_apprise, "notify-test", "--url", "json://127.0.0.1:9/hook")
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("pq notify-test: error: alerts need apprise")
    assert "pq-services[notify]" in line


def test_a_manager_without_apprise_runs_and_logs_why_alerts_are_off(
    no_apprise: dict[str, str],
) -> None:
    """Configured channels, no apprise: one error line, and the manager still works."""
    env = {**no_apprise, "PQ_NOTIFY_URLS": "json://127.0.0.1:9/hook", "PQ_METRICS_PORT": "0"}
    code = (
        "from services.common.logs import setup_logging; setup_logging('manager', log_dir='');"
        "from services.manager.events import BUS; BUS.load_entry_points();"
        "print('subscribers', len(BUS.subscribers))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "subscribers 0"
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, result.stderr
    assert "alerts off: channels are configured but apprise is missing" in errors[0]
