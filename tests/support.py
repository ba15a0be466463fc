"""Small helpers every test tier uses: waiting for a condition, picking a free port.

A plain module (not a conftest) so that anything under tests/ can import it, including
modules the root conftest itself imports (tests/backends.py, tests/pg.py).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main_thread_waits_on_fuse(pid: int) -> bool:
    """The process's main thread sleeps in the kernel's wait for a FUSE server's answer."""
    try:
        with open(f"/proc/{pid}/wchan") as wchan:
            where = wchan.read()
    except OSError:
        return False
    return "fuse" in where or "request_wait_answer" in where
