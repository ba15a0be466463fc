"""Storm control: deduplication and a per-kind rate limit that folds bursts into digests.

Per event kind, a fixed window opens at the kind's first event. The first ``burst``
distinct events of the window become their own messages; the rest are counted (with
a bounded sample) and, when the window closes, become one digest: "37 jobs
dead-lettered in the last 5 minutes". The same event (same kind and job, or the same
consumer; threshold events per kind) is announced at most once per dedup window.
Memory is bounded whatever the event rate.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable

from services.manager.events import EventKind, ManagerEvent
from services.notify.messages import DIGEST_SAMPLES, Message, digest_message, event_message
from services.notify.settings import NotifySettings

MAX_DEDUP_KEYS = 50_000


@dataclasses.dataclass
class _Window:
    opened: float
    sent: int = 0  # events of this window that went out as their own message
    total: int = 0  # all (deduplicated) events of this window
    samples: list[ManagerEvent] = dataclasses.field(default_factory=list)  # suppressed ones

    @property
    def suppressed(self) -> int:
        return self.total - self.sent


class StormControl:
    """Turns events into messages; thread-safe, O(1) per event, never blocks for long."""

    def __init__(self, settings: NotifySettings, clock: Callable[[], float]) -> None:
        self.settings = settings
        self.clock = clock
        self.suppressed_total = 0  # events folded into digests
        self.duplicates_total = 0  # events dropped as repeats
        self._windows: dict[str, _Window] = {}
        self._last_seen: OrderedDict[tuple[str, object], float] = OrderedDict()
        self._lock = threading.Lock()

    def admit(self, event: ManagerEvent) -> list[Message]:
        """Messages to send now for ``event``: its own, a due digest, both or none."""
        now = self.clock()
        with self._lock:
            out = self._close_windows(now, kind=str(event.kind))
            if self._is_duplicate(event, now):
                self.duplicates_total += 1
                return out
            window = self._windows.setdefault(str(event.kind), _Window(opened=now))
            window.total += 1
            if window.sent < self.settings.burst:
                window.sent += 1
                out.append(event_message(event, self.settings.console_url))
            else:
                self.suppressed_total += 1
                if len(window.samples) < DIGEST_SAMPLES:
                    window.samples.append(event)
            return out

    def due_digests(self) -> list[Message]:
        """Digests of windows that have closed (the sender asks on every tick)."""
        with self._lock:
            return self._close_windows(self.clock())

    def flush(self) -> list[Message]:
        """Digests of every window now, closed or not (at shutdown)."""
        with self._lock:
            return self._close_windows(float("inf"), actual_now=self.clock())

    def _close_windows(
        self, now: float, kind: str | None = None, actual_now: float | None = None
    ) -> list[Message]:
        out = []
        kinds = [kind] if kind is not None else list(self._windows)
        for name in kinds:
            window = self._windows.get(name)
            if window is None or now < window.opened + self.settings.window_seconds:
                continue
            del self._windows[name]
            if window.suppressed:
                span = (
                    self.settings.window_seconds
                    if actual_now is None
                    else max(actual_now - window.opened, 1.0)
                )
                out.append(
                    digest_message(
                        name,
                        window.samples,
                        window.total,
                        window.suppressed,
                        span,
                        self.settings.console_url,
                    )
                )
        return out

    def _is_duplicate(self, event: ManagerEvent, now: float) -> bool:
        key = (str(event.kind), _subject(event))
        last = self._last_seen.get(key)
        if last is not None and now - last < self.settings.dedup_seconds:
            return True
        self._last_seen[key] = now
        self._last_seen.move_to_end(key)
        while len(self._last_seen) > MAX_DEDUP_KEYS:
            self._last_seen.popitem(last=False)
        return False


def _subject(event: ManagerEvent) -> object:
    """What makes two events of one kind "the same": the job, the consumer, or nothing
    (a threshold event repeats while the condition lasts; once per dedup window will do)."""
    if event.kind is EventKind.DEAD_LETTERED:  # a resubmitted job may die again: news
        return ("job", event.job_id, event.at)
    if event.job_id is not None:
        return ("job", event.job_id)
    if event.consumer_id is not None:
        return ("consumer", event.consumer_id)
    return None
