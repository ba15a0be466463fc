"""Are waiting jobs being taken? The signal that says "jobs pending, nothing claimed".

Every other number can look fine while no job moves: consumers up and healthy (serving
other queues, or opening another database), the manager's view of the backlog growing
slowly. What tells it apart is the history: a *claim* is the only transition into
``processing``, so "runnable jobs have waited ``window`` seconds and no claim was
recorded in those ``window`` seconds" means nobody is taking work at all. It is read
from the queue alone (``stats()``, ``consumers()``, ``events_after()``), so the
manager's metrics and the ops console show the same thing on every backend.

``ClaimWatch`` follows the history with a cursor, so each look reads only what is new.
Its first look reads back at most ``BACKSCAN_EVENTS`` history rows; when none of them is
a claim, it counts "no claim" from the oldest row it read (honest: at least that long),
so a fresh manager or console never claims a silence it did not see.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

from pqcore import JobState, Queue, Stats

WINDOW_SECONDS = 300.0  # the alert's and the console's "5 minutes"
BACKSCAN_EVENTS = 10_000  # history rows read back on the first look
PAGE = 1000
MAX_PAGES = 10  # per look: beyond 10,000 new claims, claims are evidently happening
LIVE_STATES = ("idle", "busy")


@dataclasses.dataclass(frozen=True)
class ClaimHealth:
    """One look at the queue: is runnable work waiting while nothing is claimed?"""

    oldest_pending_age: float | None  # seconds the oldest runnable pending job has waited
    seconds_since_claim: float  # since the newest claim recorded (at least this long)
    live_consumers: int  # registered consumers in state idle or busy
    window: float = WINDOW_SECONDS

    @property
    def unclaimed(self) -> bool:
        """Runnable jobs waited ``window`` seconds and no claim happened in that time."""
        return (
            self.oldest_pending_age is not None
            and self.oldest_pending_age >= self.window
            and self.seconds_since_claim >= self.window
        )

    def describe(self) -> str:
        """One sentence for a person (the console's warning)."""
        waited = round(self.oldest_pending_age or 0)
        silent = round(self.seconds_since_claim)
        if self.live_consumers:
            who = (
                f"{self.live_consumers} live consumer(s) are registered but took none: "
                "do they serve this job's queue (PQ_QUEUES), or are they stuck?"
            )
        else:
            who = (
                "no live consumer is registered in this database: are the consumers "
                "down, or running against another database (PQ_DB / PQ_STACK_DB)?"
            )
        return (
            f"Jobs are waiting and nothing is being claimed: the oldest runnable job has "
            f"waited {waited}s and no job was claimed for {silent}s; {who}"
        )


class ClaimWatch:
    """Follows the history for claims; thread-safe (the console shares one per process)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._cursor: int | None = None
        self.last_claim_at: float | None = None  # the newest claim seen
        self._quiet_since: float | None = None  # no claim since (when none was seen)

    def seconds_since_claim(self, queue: Queue) -> float:
        """Read what is new in the history, then the seconds since the newest claim."""
        with self._lock:
            self._follow(queue)
            now = self._clock()
            since = self.last_claim_at if self.last_claim_at is not None else self._quiet_since
            return 0.0 if since is None else max(0.0, now - since)

    def health(
        self,
        queue: Queue,
        window: float = WINDOW_SECONDS,
        *,
        stats: Stats | None = None,
    ) -> ClaimHealth:
        """The look the console takes; ``stats``: a ``queue.stats()`` the caller just read."""
        stats = stats or queue.stats()
        silent = self.seconds_since_claim(queue)
        live = sum(1 for c in queue.consumers() if c.state in LIVE_STATES)
        return ClaimHealth(stats.oldest_pending_age, silent, live, window)

    def _follow(self, queue: Queue) -> None:
        top = queue.last_event_id()
        if self._cursor is None:
            self._cursor = max(0, top - BACKSCAN_EVENTS)
            first = queue.events_after(self._cursor, limit=1)
            # The oldest row read: no claim is known before it (and with the whole
            # history read, none happened before it). An empty history: quiet from now.
            self._quiet_since = first[0].at if first and first[0].id <= top else self._clock()
        for _ in range(MAX_PAGES):
            page = queue.events_after(self._cursor, to_status=JobState.PROCESSING, limit=PAGE)
            claims = [event for event in page if event.id <= top]
            if claims:
                newest = max(event.at for event in claims)
                if self.last_claim_at is None or newest > self.last_claim_at:
                    self.last_claim_at = newest
            if len(claims) < PAGE:
                break
            self._cursor = claims[-1].id
        # Everything up to ``top`` has been read (or claims are plentiful): go on from there.
        self._cursor = top
