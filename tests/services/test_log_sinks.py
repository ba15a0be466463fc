"""Where a service's log lines go: every line to its log file, and to stderr the lines at
``--stderr-log-level`` or above (supervisor saves stderr to a file of its own). Real
processes: stderr is the process's own, the log file a real file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LOG_TWO_LINES = (
    "import sys; from loguru import logger;"
    "from services.common.logs import setup_logging;"
    "setup_logging('consumer', log_dir=sys.argv[1], stderr_level=sys.argv[2] or None);"
    "logger.info('completed job=1 attempt=1'); logger.warning('failed job=2 attempt=1')"
)


def run_logging(log_dir: str, stderr_level: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", LOG_TWO_LINES, log_dir, stderr_level],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr


def test_stderr_carries_only_what_is_at_its_level_the_file_has_everything(
    tmp_path: Path,
) -> None:
    stderr = run_logging(str(tmp_path), "warning")
    assert "failed job=2" in stderr and "completed job=1" not in stderr
    written = (tmp_path / "consumer.log").read_text()
    assert "completed job=1" in written and "failed job=2" in written


def test_without_a_log_file_stderr_gets_every_line_whatever_its_level(tmp_path: Path) -> None:
    stderr = run_logging("", "WARNING")
    assert "completed job=1" in stderr and "failed job=2" in stderr
    assert not list(tmp_path.iterdir())


def test_a_log_file_that_cannot_be_written_puts_every_line_on_stderr(tmp_path: Path) -> None:
    blocked = tmp_path / "logs"
    blocked.write_text("a file where the log directory should be")
    stderr = run_logging(str(blocked), "WARNING")
    assert "cannot write log file" in stderr
    assert "completed job=1" in stderr and "failed job=2" in stderr


@pytest.mark.parametrize(
    ("env", "flags", "named"),
    [
        ({"PQ_LOG_STDERR_LEVEL": "loud"}, [], "--stderr-log-level"),
        ({}, ["--log-level="], "--log-level"),
        ({"PQ_LOG_LEVEL": "verbose"}, [], "--log-level"),
    ],
)
def test_an_unknown_level_is_a_clear_error_not_a_traceback(
    tmp_path: Path, env: dict[str, str], flags: list[str], named: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.consumer", "--db", str(tmp_path / "q.db"), *flags],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"{named}: expected one of" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "q.db").exists()
