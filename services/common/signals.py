"""SIGTERM/SIGINT handling: a stop request every loop can wait on, and a deadline for
the whole shutdown.

A service stopping with its database gone (PostgreSQL stopped or paused, a disk that
hangs) would otherwise wait out each last call's own timeout one after another — tens of
seconds, until Docker or supervisor SIGKILLs it. ``install(exit_within=...)`` bounds the
total instead: once that long after the signal the process exits by itself, saying so.
Nothing is lost by it: a job still held is rescued when its lease expires, exactly as
after a crash, and every outcome the service acknowledged was already committed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

from loguru import logger

EXIT_OVERDUE = 3  # like a storage error: the stop could not finish its last writes
# How long the manager and the producer may take to stop: their last writes (resign the
# leadership, nothing for a producer) are one statement each.
STOP_SECONDS = 5.0
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


class StopRequest:
    """Set by SIGTERM or SIGINT (or ``request()``); loops wait on it instead of sleeping."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None
        self.requested_at: float | None = None
        self.exit_within: float | None = None
        self._deadline_lock = threading.Lock()
        self._deadline_armed = False
        self._signals_off_main_thread = False

    def install(
        self, *, exit_within: float | None = None, signals_off_main_thread: bool = False
    ) -> StopRequest:
        """Handle SIGTERM/SIGINT; with ``exit_within``, a stop signal also starts a
        deadline after which the process exits whatever it is blocked in.

        ``signals_off_main_thread``: the signals are blocked in the main thread (and in
        every thread started after this call) and taken by a thread of their own. The
        kernel hands a process's signal to its main thread first; one stuck in a request
        to a hung disk (FUSE, NFS) takes it and cannot act on it until the request
        returns, so neither Python's handler nor the wakeup fd below ever sees it (a
        manager on a paused FaultFS, 1 run in 10). Call it before starting threads. Code
        of users that may start programs runs inside ``signals_delivered_here()``, or the
        programs would inherit the blocked signals and ignore their own SIGTERM."""
        self.exit_within = exit_within
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self._signals_off_main_thread = signals_off_main_thread
        if signals_off_main_thread:  # before any thread starts, so each inherits it
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            threading.Thread(target=self._take_signals, name="stop-signals", daemon=True).start()
        if exit_within is not None:
            self._watch_for_signals()
        return self

    @contextlib.contextmanager
    def signals_delivered_here(self) -> Iterator[None]:
        """Unblock the stop signals in this thread for the block's duration (a user's
        handler, whose child processes inherit the mask); a no-op unless they are off
        the main thread."""
        if not self._signals_off_main_thread:
            yield
            return
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

    def _take_signals(self) -> None:
        while True:
            name = signal.Signals(signal.sigwait(STOP_SIGNALS)).name
            self._stop_on(name)

    def _watch_for_signals(self) -> None:
        """Start the deadline even while the main thread is blocked in a system call.

        Python runs a signal's handler in the main thread, between bytecodes: a producer
        blocked in a file operation on a hung disk never ran it, so its deadline never
        started. CPython's C-level handler also writes the signal's number to the wakeup
        fd at once, whatever the main thread is doing; a thread reading it arms the
        deadline (the handler itself still requests the stop when it runs)."""
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        stops = {signal.SIGTERM.value, signal.SIGINT.value}

        def watch() -> None:
            while True:
                received = os.read(read_end, 64)
                if not received:
                    return
                for signum in received:
                    if signum in stops:
                        self._arm_deadline(signal.Signals(signum).name)

        threading.Thread(target=watch, name="stop-deadline", daemon=True).start()

    def _arm_deadline(self, name: str) -> None:
        if self.exit_within is None:
            return
        with self._deadline_lock:
            if self._deadline_armed:
                return
            self._deadline_armed = True
        deadline = threading.Timer(self.exit_within, self._overdue, args=(name,))
        deadline.daemon = True
        deadline.start()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._stop_on(signal.Signals(signum).name)

    def _stop_on(self, name: str) -> None:
        if self._event.is_set():
            logger.warning("{} again: already stopping", name)
            return
        self.request(name)
        self._arm_deadline(name)

    def _overdue(self, name: str) -> None:
        logger.error(
            "still stopping {}s after {} (the database is not answering?): exiting now;"
            " a job still held is rescued when its lease expires",
            self.exit_within,
            name,
        )
        logger.complete()
        os._exit(EXIT_OVERDUE)

    def request(self, why: str = "requested") -> None:
        self.signal_name = why
        self.requested_at = time.monotonic()
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True as soon as a stop is requested."""
        return self._event.wait(max(0.0, timeout))
