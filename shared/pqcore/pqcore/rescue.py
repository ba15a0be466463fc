"""Rescue of expired leases that a wall-clock step cannot fool.

A lease is compared with the queue's clock (PostgreSQL: the server's; SQLite: the
host's). When that clock steps forward — an NTP correction, a VM resumed from a pause —
every lease written before the step looks expired at once, though every holder is alive
and will renew within a heartbeat period. ``rescue_expired`` would take them all back.

``ConfirmedRescue`` looks twice: a lease found expired is rescued only if, after a
confirmation period measured on this process's monotonic clock (which no wall-clock
step moves), it is still the same lease — same token, same expiry, never renewed —
and still expired. A live holder renews within its heartbeat period (pq's consumer:
every lease/3), so the period is half of the job's own lease (``lease_expires_at -
updated_at`` of its last renewal): a heartbeat period plus room for the heartbeat's
round trip. A crashed holder's job is rescued that much later than its expiry.

State is this object's: a rescuer that restarts only looks again, never earlier.

The stall check (a job processing longer than a timeout, heartbeats or not) cannot look
twice: a live job stays as old as it is. ``ClockWatch`` measures instead how far the
queue's clock has stepped forward against this process's monotonic clock, and the
timeout is lengthened by that step for as long as jobs started before it can exist.
A rescuer started after a step has not seen it: the watch begins with its first sample.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pqcore.models import Job

CONFIRM_FRACTION = 0.5  # of the job's lease: one heartbeat period (lease/3) plus room
STEP_TOLERANCE = 1.0  # seconds: sampling jitter (a round trip), never a step worth minding


class _Rescuing(Protocol):
    def expired_leases(self, *, limit: int = ...) -> list[Job]: ...
    def rescue_unrenewed(self, seen: list[Job], *, why: str = ...) -> list[Job]: ...


@dataclass(frozen=True)
class _Sighting:
    lease: tuple[str | None, float | None]  # (token, expiry) when first found expired
    at: float  # monotonic time of that first sighting
    wait: float  # seconds to wait, on the monotonic clock, before rescuing


class ConfirmedRescue:
    def __init__(
        self,
        queue: _Rescuing,
        *,
        fraction: float = CONFIRM_FRACTION,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not fraction >= 0:
            raise ValueError("the confirmation fraction must not be negative")
        self.queue = queue
        self.fraction = fraction
        self.clock = clock
        self._seen: dict[int, _Sighting] = {}

    @property
    def awaiting(self) -> int:
        """Expired leases seen and not yet confirmed."""
        return len(self._seen)

    def rescue_expired(self, *, limit: int = 1000) -> list[Job]:
        """Rescue the expired leases confirmed by a second look; remember the new ones."""
        found = self.queue.expired_leases(limit=limit)
        now = self.clock()
        seen: dict[int, _Sighting] = {}
        due: list[Job] = []
        for job in found:
            lease = (job.lease_token, job.lease_expires_at)
            earlier = self._seen.get(job.id)
            if earlier is None or earlier.lease != lease:  # new, or renewed since
                length = max(0.0, (job.lease_expires_at or 0.0) - job.updated_at)
                earlier = _Sighting(lease, now, self.fraction * length)
            seen[job.id] = earlier
            if now - earlier.at >= earlier.wait:
                due.append(job)
        # Leases no longer expired (renewed, settled, rescued by someone) are forgotten.
        self._seen = seen
        rescued = self.queue.rescue_unrenewed(due) if due else []
        for job in due:
            self._seen.pop(job.id, None)  # rescued, or changed: a fresh look next time
        return rescued


class ClockWatch:
    """The queue's clock against this process's monotonic clock: their difference is
    constant but for steps of the queue's clock (or this host's drift, negligible)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._samples: deque[tuple[float, float]] = deque()  # (monotonic, offset)

    def sample(self, queue_now: float, *, keep: float) -> None:
        """Record the queue's time read just now; forget samples older than ``keep``."""
        now = self.clock()
        self._samples.append((now, queue_now - now))
        while self._samples and self._samples[0][0] < now - keep:
            self._samples.popleft()

    def forward_step(self, within: float) -> float:
        """How far the queue's clock has stepped forward over the last ``within`` seconds
        of monotonic time (0 when it has not, or only by sampling jitter)."""
        if not self._samples:
            return 0.0
        latest, offset = self._samples[-1]
        lowest = min(o for at, o in self._samples if at >= latest - within)
        step = offset - lowest
        return step if step > STEP_TOLERANCE else 0.0
