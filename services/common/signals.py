"""SIGTERM/SIGINT handling: a stop request every loop can wait on."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

from loguru import logger


class StopRequest:
    """Set by SIGTERM or SIGINT (or ``request()``); loops wait on it instead of sleeping."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None
        self.requested_at: float | None = None

    def install(self) -> StopRequest:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        return self

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self._event.is_set():
            logger.warning("{} again: already stopping", name)
            return
        self.request(name)

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
