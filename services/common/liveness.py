"""Liveness: is this service's main loop still turning?

The metrics endpoint runs in its own thread, so it answers even when the main loop is
deadlocked or stuck on a lock. Each main loop therefore calls ``beat()`` every
iteration (idle waits are bounded, so beats keep coming while there is nothing to do),
and ``/healthz`` answers 503 once the last beat is older than the liveness timeout.

A consumer running a long job does not loop; its lease-heartbeat thread beats for it
after every heartbeat the database accepted, so a long job that still holds its lease
is alive, while a consumer whose heartbeats stop (lease lost, database wedged, thread
stuck) is not.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import Gauge

from services.common.signals import StopRequest

DEFAULT_TIMEOUT_SECONDS = 60.0
BEAT_SLICE_SECONDS = 1.0  # the longest a `wait` sleeps between two beats

LAST_BEAT = Gauge(
    "pq_service_last_beat_timestamp_seconds", "time of the last beat of the service's main loop"
)


class Liveness:
    def __init__(
        self,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self._clock = clock
        self._last = clock()  # a service counts as alive from its start until the timeout

    def beat(self) -> None:
        self._last = self._clock()
        LAST_BEAT.set_to_current_time()

    def age(self) -> float:
        """Seconds since the last beat."""
        return max(0.0, self._clock() - self._last)

    def alive(self) -> bool:
        return self.age() <= self.timeout


LIVENESS = Liveness()


def beat() -> None:
    LIVENESS.beat()


def wait(stop: StopRequest, seconds: float) -> bool:
    """``stop.wait(seconds)`` that keeps beating; True as soon as a stop is requested."""
    deadline = time.monotonic() + seconds
    while True:
        beat()
        left = deadline - time.monotonic()
        if left <= 0:
            return stop.requested
        if stop.wait(min(left, BEAT_SLICE_SECONDS)):
            return True
