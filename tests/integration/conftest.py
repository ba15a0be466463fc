"""Integration tier: real processes against real storage, per backend (by its URL)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.conftest import ROOT


class Child:
    """A ``tests.integration.worker`` process with line-based, deadline-bounded I/O."""

    def __init__(self, role: str, url: str, *args: str, env: dict[str, str] | None = None):
        environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.worker", role, "--url", url, *args],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
        )
        self._buffer = b""
        self.lines: list[str] = []  # every complete line read so far

    @property
    def pid(self) -> int:
        return self.proc.pid

    def read_line(self, timeout: float = 30.0) -> str:
        """The next complete line; fails the test if none comes before the deadline."""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no line from child {self.pid} in {timeout}s: {self.stderr()}"
                )
            ready, _, _ = select.select([self.proc.stdout], [], [], remaining)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"child {self.pid} exited early: {self.stderr()}")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        text = line.decode()
        self.lines.append(text)
        return text

    def rest_of_output(self) -> list[str]:
        """After the child ended: every remaining complete line (a torn last line is dropped)."""
        assert self.proc.stdout is not None
        self._buffer += self.proc.stdout.read() or b""
        *complete, self._buffer = self._buffer.split(b"\n")
        texts = [c.decode() for c in complete]
        self.lines += texts
        return texts

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def wait(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(still running)"
        return self.proc.stderr.read().decode(errors="replace")[-2000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)  # a stopped child cannot die otherwise
                self.proc.kill()
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)


@pytest.fixture
def children() -> Iterator[list[Child]]:
    """Collects the test's child processes and kills any still running at the end."""
    started: list[Child] = []
    yield started
    for child in started:
        child.kill()
        for stream in (child.proc.stdin, child.proc.stdout, child.proc.stderr):
            if stream is not None:
                stream.close()
