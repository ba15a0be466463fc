"""deploy/scripts/clear-stale-pidfile.sh: a daemon's pid file outlives the daemon on a
restored snapshot, and dockerd will not start while the pid in it is alive."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "scripts" / "clear-stale-pidfile.sh"


def clear(pidfile: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), str(pidfile), name], capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "300"])
    yield process
    process.kill()
    process.wait()


def test_a_pid_reused_by_another_program_is_removed(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    # The CI failure: the old dockerd pid belonged to a live kernel worker.
    pidfile = tmp_path / "docker.pid"
    pidfile.write_text(str(sleeper.pid))
    result = clear(pidfile, "dockerd")
    assert result.returncode == 0, result.stderr
    assert not pidfile.exists()
    assert f"pid '{sleeper.pid}' is not a running dockerd" in result.stderr


def test_the_pid_file_of_a_running_daemon_is_kept(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    pidfile = tmp_path / "sleep.pid"
    pidfile.write_text(f"{sleeper.pid}\n")
    result = clear(pidfile, "sleep")
    assert result.returncode == 0, result.stderr
    assert pidfile.read_text() == f"{sleeper.pid}\n"


def test_a_dead_pid_and_garbage_are_removed(tmp_path: Path) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    for content in (str(finished.pid), "", "not a pid"):
        pidfile = tmp_path / "docker.pid"
        pidfile.write_text(content)
        result = clear(pidfile, "dockerd")
        assert result.returncode == 0, result.stderr
        assert not pidfile.exists(), content


def test_no_pid_file_is_nothing_to_do(tmp_path: Path) -> None:
    result = clear(tmp_path / "absent.pid", "dockerd")
    assert result.returncode == 0 and result.stderr == ""
