"""Inside a pq image (PQ_IN_CONTAINER=1) a relative SQLite path is refused at start.

Such a path is a database private to one container: the producer's jobs would pile up
where no consumer looks, while every container reported healthy. The real `pq`
commands run here as subprocesses, in a scratch working directory, exactly as the
images start them.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from services.common.container import container_database_problem
from tests.conftest import pq_command

IN_CONTAINER = {"PQ_IN_CONTAINER": "1"}


@pytest.mark.parametrize(
    "db",
    ["var/queue.db", "queue.db", "./data/queue.db", "sqlite:///var/queue.db", ":memory:", ""],
)
def test_a_relative_or_private_sqlite_database_is_a_problem_in_a_container(db: str) -> None:
    problem = container_database_problem(db, IN_CONTAINER)
    assert problem is not None
    assert repr(db) in problem and "PQ_STACK_DB" in problem and "\n" not in problem


@pytest.mark.parametrize(
    "db",
    [
        "/data/queue.db",
        "sqlite:////data/queue.db",
        "postgresql://pq:secret@postgres:5432/pq",
        "postgres://pq@db/pq",
    ],
)
def test_a_shared_database_is_fine_in_a_container(db: str) -> None:
    assert container_database_problem(db, IN_CONTAINER) is None


@pytest.mark.parametrize("flag", ["", "0", "no", "off"])
def test_outside_a_container_a_relative_path_is_the_normal_local_run(flag: str) -> None:
    assert container_database_problem("var/queue.db", {"PQ_IN_CONTAINER": flag}) is None
    assert container_database_problem("var/queue.db", {}) is None


def run_pq(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")}
    environ.update(PQ_LOG_DIR="", PQ_METRICS_PORT="0", **env)
    return subprocess.run(
        [*pq_command(), *args],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("role", ["producer", "consumer", "manager"])
def test_a_service_in_a_container_refuses_a_relative_path_with_one_line(
    tmp_path: Path, role: str
) -> None:
    result = run_pq(tmp_path, role, PQ_IN_CONTAINER="1", PQ_DB="var/queue.db")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert f"{role} refused to start: queue database 'var/queue.db'" in lines[0]
    assert str(tmp_path / "var" / "queue.db") in lines[0]  # names the private file
    assert not (tmp_path / "var").exists()  # nothing was created


def test_a_flag_is_checked_like_the_variable(tmp_path: Path) -> None:
    result = run_pq(tmp_path, "manager", "--db", "sqlite:///q.db", PQ_IN_CONTAINER="1")
    assert result.returncode == 2
    assert "manager refused to start: queue database 'sqlite:///q.db'" in result.stderr
    assert not (tmp_path / "q.db").exists()


@pytest.mark.parametrize("console", ["admin", "ops"])
def test_a_console_in_a_container_refuses_a_relative_path(tmp_path: Path, console: str) -> None:
    result = run_pq(tmp_path, "console", console, "--port", "1", PQ_IN_CONTAINER="1")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""  # refused before Streamlit or any one-time password
    [line] = result.stderr.splitlines()
    assert line.startswith(f"pq console {console}: refused to start: queue database ")
    assert "'var/queue.db'" in line  # the default, relative to the working directory


def test_the_same_service_starts_on_the_shared_absolute_path(tmp_path: Path) -> None:
    """The check refuses only what it must: an absolute path in a container runs."""
    db = tmp_path / "data" / "queue.db"
    db.parent.mkdir()
    result = run_pq(
        tmp_path,
        "producer",
        "--count",
        "1",
        "--interval",
        "0",
        PQ_IN_CONTAINER="1",
        PQ_DB=str(db),
        PQ_JOBS_DIR=str(tmp_path / "jobs"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert db.exists() and "refused" not in result.stderr
