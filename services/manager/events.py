"""Manager events: the hook alerting plugs into.

The manager publishes a ``ManagerEvent`` when a job enters the dead-letter queue,
when it takes back a stalled job, when it declares a consumer dead, and while the
oldest pending job is older than a threshold or the backlog is above one.

Subscribing. A subscriber is any callable taking one ``ManagerEvent``. Either call
``subscribe(fn)`` in-process, or declare an entry point in the ``pq.manager_events``
group naming a factory ``make() -> subscriber | None`` (None: not configured, e.g. no
channel set up); the manager loads them at start::

    [project.entry-points."pq.manager_events"]
    notify = "services.notify.manager:make_subscriber"

Delivery runs on one background thread fed by a bounded queue, so a slow or failing
subscriber never delays or breaks a maintenance cycle: its exceptions are logged,
and when the queue is full new events are dropped and counted (never the jobs).
"""

from __future__ import annotations

import dataclasses
import enum
import queue
import threading
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

from loguru import logger

ENTRY_POINT_GROUP = "pq.manager_events"
MAX_PENDING_EVENTS = 10_000


class EventKind(enum.StrEnum):
    DEAD_LETTERED = "dead_lettered"  # a job entered permanently_failed
    STALLED_RECOVERED = "stalled_recovered"  # a processing job was taken back
    CONSUMER_DEAD = "consumer_dead"  # a consumer's heartbeats stopped
    OLDEST_PENDING_OVER_THRESHOLD = "oldest_pending_over_threshold"
    BACKLOG = "backlog"  # pending jobs above the threshold


@dataclasses.dataclass(frozen=True)
class ManagerEvent:
    kind: EventKind
    at: float = dataclasses.field(default_factory=time.time)
    job_id: int | None = None
    payload: str | None = None
    queue: str | None = None
    error: str | None = None
    attempts: int | None = None
    max_attempts: int | None = None
    consumer_id: str | None = None
    reason: str | None = None  # e.g. "lease_expired" / "stall_timeout"
    value: float | None = None  # the measured age or count for threshold events
    threshold: float | None = None
    counts: dict[str, int] | None = None  # jobs per status when the event was made

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["kind"] = self.kind.value
        return out


Subscriber = Callable[[ManagerEvent], None]


class EventBus:
    """Fans events out to subscribers on a background thread."""

    def __init__(self) -> None:
        self.subscribers: list[Subscriber] = []
        self.dropped = 0
        self._queue: queue.Queue[ManagerEvent | None] = queue.Queue(MAX_PENDING_EVENTS)
        self._thread: threading.Thread | None = None

    def subscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)

    def load_entry_points(self) -> None:
        for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
            try:
                subscriber = entry.load()()
            except Exception as error:  # a broken plugin must not stop the manager
                logger.error("event subscriber {} unavailable: {}", entry.name, error)
                continue
            if subscriber is not None:
                self.subscribe(subscriber)
                logger.info("event subscriber {} loaded", entry.name)

    def publish(self, event: ManagerEvent) -> None:
        if not self.subscribers:
            return
        self._ensure_thread()
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                logger.error("event queue full: {} event(s) dropped so far", self.dropped)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout`` seconds), then stop the thread."""
        if self._thread is None:
            return
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._deliver, name="events", daemon=True)
            self._thread.start()

    def _deliver(self) -> None:
        while (event := self._queue.get()) is not None:
            for subscriber in list(self.subscribers):
                try:
                    subscriber(event)
                except Exception as error:
                    logger.opt(exception=error).error(
                        "event subscriber {!r} failed on {}: {}", subscriber, event.kind, error
                    )


# The manager process publishes here; in-process code may subscribe to it.
BUS = EventBus()
subscribe = BUS.subscribe
unsubscribe = BUS.unsubscribe
