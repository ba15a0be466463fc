"""What the browser tests of the consoles share: Debian's Chromium through Playwright,
and consoles started the way users start them (``pq console``)."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, pq_command, require
from tests.support import free_port

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests" / "artifacts" / "consoles"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
STARTUP_SECONDS = 60.0


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"console exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"console did not answer on {url} within {STARTUP_SECONDS}s:\n{log.read_text()}")


class Consoles:
    """Running consoles: ``urls[name]``, ``metrics[name]`` (their Prometheus endpoints)
    and ``logs[name]``."""

    def __init__(self) -> None:
        self.urls: dict[str, str] = {}
        self.metrics: dict[str, str] = {}
        self.logs: dict[str, Path] = {}
        self.processes: list[subprocess.Popen[bytes]] = []

    def __getitem__(self, name: str) -> str:
        return self.urls[name]


def start_consoles(db: Path, users: Path, names: tuple[str, ...] = ("admin", "ops")) -> Consoles:
    env = {**os.environ, "PQ_CONSOLE_USERS": str(users), "PQ_CONSOLE_REFRESH_SECONDS": "2"}
    running = Consoles()
    try:
        for name in names:
            port, metrics_port = free_port(), free_port()
            log = db.parent / f"{name}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [*pq_command(), "console", name, "--port", str(port),
                     "--address", "127.0.0.1", "--db", str(db),
                     "--metrics-port", str(metrics_port)],
                    env=env, stdout=out, stderr=subprocess.STDOUT, cwd=db.parent,
                )  # fmt: skip
            running.processes.append(process)
            running.urls[name] = f"http://127.0.0.1:{port}"
            running.metrics[name] = f"http://127.0.0.1:{metrics_port}/metrics"
            running.logs[name] = log
            wait_healthy(running.urls[name], process, log)
    except BaseException:
        stop_consoles(running)
        raise
    return running


def stop_consoles(running: Consoles) -> None:
    for process in running.processes:
        process.terminate()
    for process in running.processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    require(CHROMIUM.exists(), f"Chromium is not installed at {CHROMIUM} (apt install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield instance
        instance.close()
