"""The stop deadline starts when the signal arrives, even while the main thread cannot
run Python's handler (a producer blocked in a file operation on a hung disk never
started it: tests/chaos/test_stop_without_database.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from services.common.signals import EXIT_OVERDUE

BLOCKED_MAIN_THREAD = """
import ctypes, signal
from services.common.signals import StopRequest
StopRequest().install(exit_within=1.0)
# The main thread as on a hung disk: inside the kernel, the GIL released, and no signal
# handler can run in it (here: SIGTERM blocked in it, so the kernel delivers the signal
# to another thread; a FUSE request instead waits out the signal).
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
print("ready", flush=True)
ctypes.CDLL(None).sleep(3600)
"""


def test_the_deadline_ends_a_process_whose_main_thread_is_stuck_in_one_call() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", BLOCKED_MAIN_THREAD],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        time.sleep(0.2)  # inside the long call
        asked = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        took = time.monotonic() - asked
        output = process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert code == EXIT_OVERDUE, output
    assert "exiting now" in output
    assert took < 20  # the 1 s deadline, however loaded the machine; not hours
