"""`pq console`: the hash helper and refusing a bad configuration before starting."""

from __future__ import annotations

import subprocess
from pathlib import Path

from services.consoles import auth
from services.consoles.cli import streamlit_command
from tests.conftest import pq_command


def test_hash_password_prints_a_verifiable_hash() -> None:
    done = subprocess.run(
        [*pq_command(), "console", "hash-password", "--password-stdin"],
        input="s3cret\n", capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    encoded = done.stdout.strip()
    assert auth.verify_password("s3cret", encoded) and "s3cret" not in encoded


def test_hash_password_refuses_an_empty_password() -> None:
    done = subprocess.run(
        [*pq_command(), "console", "hash-password", "--password-stdin"],
        input="\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "empty" in done.stderr


def test_console_refuses_to_start_with_a_bad_users_file(tmp_path: Path) -> None:
    users = tmp_path / "users.json"
    users.write_text('{"eve": {"role": "admin", "password": "plain"}}')
    done = subprocess.run(
        [*pq_command(), "console", "admin", "--port", "1"],
        env={"PATH": "/usr/bin:/bin", auth.USERS_ENV: str(users)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "plain 'password'" in done.stderr and "Traceback" not in done.stderr


def test_streamlit_runs_headless_without_telemetry_or_reloads() -> None:
    command = streamlit_command("ops", 9000, "127.0.0.1")
    flags = dict(zip(command[5::2], command[6::2], strict=True))
    assert command[1:4] == ["-m", "services.consoles.serve", "ops"]
    assert command[4].endswith("ops_app.py")
    assert flags["--server.port"] == "9000" and flags["--server.address"] == "127.0.0.1"
    assert flags["--server.headless"] == "true"
    assert flags["--browser.gatherUsageStats"] == "false"
    assert flags["--server.fileWatcherType"] == "none"
    assert flags["--client.showErrorDetails"] == "type"
