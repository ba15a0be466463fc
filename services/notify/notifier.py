"""The notifier: ``notify(event)`` returns at once; a background sender delivers.

Why a thread of its own: an SMTP server that hangs or a webhook that refuses
connections must never slow a maintenance cycle. ``notify`` only runs storm control
and puts messages on a bounded queue; when that queue is full the message is dropped
and counted (alerts are about jobs; the jobs themselves are safe in the database).
The sender retries each failed channel with exponential backoff without holding up
the other channels or later messages, and ``close`` flushes within a deadline.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import queue
import random
import threading
import time
from collections.abc import Callable

from loguru import logger

from services.manager.events import ManagerEvent
from services.notify import metrics
from services.notify.channels import Channel
from services.notify.messages import Message
from services.notify.settings import NotifySettings
from services.notify.storm import StormControl

TICK_SECONDS = 0.2  # how often the sender looks for due digests and retries
_WAKE = None  # put on the queue by close() so the sender notices at once


@dataclasses.dataclass(order=True)
class _Retry:
    due: float
    seq: int
    message: Message = dataclasses.field(compare=False)
    channel: Channel = dataclasses.field(compare=False)
    attempt: int = dataclasses.field(compare=False)  # attempts made so far


class Notifier:
    def __init__(
        self,
        settings: NotifySettings,
        channels: list[Channel],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.channels = channels
        self.storm = StormControl(settings, clock)
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.dropped_on_close = 0
        self._queue: queue.Queue[Message | None] = queue.Queue(settings.queue_size)
        self._retries: list[_Retry] = []
        self._seq = itertools.count()
        self._deadline: float | None = None  # set by close(): flush until then
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    # ------------------------------------------------------------ callers' side

    def __call__(self, event: ManagerEvent) -> None:
        """The manager's event subscriber."""
        self.notify(event)

    def notify(self, event: ManagerEvent) -> None:
        """Queue the messages ``event`` calls for; never blocks, never raises."""
        try:
            before = (self.storm.suppressed_total, self.storm.duplicates_total)
            messages = self.storm.admit(event)
            if self.storm.suppressed_total != before[0]:
                metrics.SUPPRESSED.labels(kind=str(event.kind), reason="digest").inc()
            if self.storm.duplicates_total != before[1]:
                metrics.SUPPRESSED.labels(kind=str(event.kind), reason="duplicate").inc()
            for message in messages:
                self.submit(message)
        except Exception as error:  # an alert must never take the caller down
            logger.opt(exception=error).error("notification for {} lost: {}", event.kind, error)

    def submit(self, message: Message) -> bool:
        """Queue ``message`` for every channel; False (and counted) when the queue is full."""
        if self._deadline is not None:
            self._drop(message, "closed")
            return False
        self._ensure_thread()
        try:
            self._queue.put_nowait(message)
            return True
        except queue.Full:
            self._drop(message, "queue_full")
            return False

    def send_now(self, message: Message) -> dict[str, bool]:
        """Deliver synchronously, one attempt per channel (``pq notify-test``)."""
        return {
            channel.name: self._attempt(message, channel, 1, final=True)
            for channel in self.channels
        }

    def close(self, timeout: float | None = None) -> bool:
        """Send pending digests, flush queued messages and retries within ``timeout``
        (default ``flush_seconds``); True when the sender finished in time, abandoning
        nothing (messages given up after their retries are counted as failed, not here)."""
        timeout = self.settings.flush_seconds if timeout is None else timeout
        for digest in self.storm.flush():
            self.submit(digest)
        self._deadline = time.monotonic() + timeout
        if self._thread is None:
            return True
        try:
            self._queue.put_nowait(_WAKE)
        except queue.Full:
            pass  # the sender polls every tick anyway
        self._thread.join(timeout + 2 * TICK_SECONDS)
        return not self._thread.is_alive() and self.dropped_on_close == 0

    # ------------------------------------------------------------ sender thread

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                if not self._step():
                    return
            except Exception as error:  # keep delivering whatever one message did
                logger.opt(exception=error).error("notification sender error: {}", error)

    def _step(self) -> bool:
        """One round of work; False when closing and done (or out of time)."""
        now = time.monotonic()
        while self._retries and self._retries[0].due <= now:
            retry = heapq.heappop(self._retries)
            self._deliver(retry.message, retry.channel, retry.attempt + 1)
        for digest in self.storm.due_digests():
            self._deliver_all(digest)
        if self._deadline is not None:
            if self._queue.empty() and not self._retries:
                return False
            if now >= self._deadline:
                self._abandon_on_close()
                return False
        wait = TICK_SECONDS
        if self._retries:
            wait = min(wait, self._retries[0].due - now)
        if self._deadline is not None:
            wait = min(wait, self._deadline - now)
        try:
            message = self._queue.get(timeout=max(wait, 0.001))
        except queue.Empty:
            return True
        if message is not _WAKE:
            self._deliver_all(message)
        return True

    def _deliver_all(self, message: Message) -> None:
        for channel in self.channels:
            self._deliver(message, channel, 1)

    def _deliver(self, message: Message, channel: Channel, attempt: int) -> None:
        final = attempt > self.settings.retries
        if self._attempt(message, channel, attempt, final=final) or final:
            return
        delay = min(
            self.settings.retry_cap_seconds,
            self.settings.retry_base_seconds * 2 ** (attempt - 1),
        ) * random.uniform(0.9, 1.1)
        logger.warning(
            "notification to {} failed (attempt {} of {}); retrying in {:.1f}s: {}",
            channel.name,
            attempt,
            self.settings.retries + 1,
            delay,
            message.title,
        )
        if len(self._retries) >= self.settings.queue_size:  # bound memory while a channel is down
            oldest = min(self._retries, key=lambda r: r.seq)
            self._retries.remove(oldest)
            heapq.heapify(self._retries)
            self._give_up(oldest.message, oldest.channel, "too many retries pending")
        heapq.heappush(
            self._retries,
            _Retry(time.monotonic() + delay, next(self._seq), message, channel, attempt),
        )

    def _attempt(self, message: Message, channel: Channel, attempt: int, *, final: bool) -> bool:
        if channel.send(message):
            self.sent += 1
            metrics.SENT.labels(channel=channel.scheme, kind=message.kind).inc()
            if attempt > 1:
                logger.info("notification to {} delivered on attempt {}", channel.name, attempt)
            return True
        if final:
            self._give_up(message, channel, f"{attempt} attempt(s) failed")
        return False

    def _give_up(self, message: Message, channel: Channel, why: str) -> None:
        self.failed += 1
        metrics.FAILED.labels(channel=channel.scheme, kind=message.kind).inc()
        logger.error("notification to {} given up ({}): {}", channel.name, why, message.title)

    def _drop(self, message: Message, reason: str) -> None:
        self.dropped += 1
        metrics.DROPPED.labels(reason=reason).inc()
        if self.dropped == 1 or self.dropped % 100 == 0:
            logger.error(
                "notification dropped ({}); {} dropped so far: {}",
                reason,
                self.dropped,
                message.title,
            )

    def _abandon_on_close(self) -> None:
        left: list[Message] = [r.message for r in self._retries]
        self._retries.clear()
        while True:
            try:
                message = self._queue.get_nowait()
            except queue.Empty:
                break
            if message is not _WAKE:
                left.append(message)
        for message in left:
            self.dropped_on_close += 1
            self._drop(message, "shutdown")
        if left:
            logger.error(
                "notifier closed with {} message(s) undelivered (flush deadline passed)",
                len(left),
            )
