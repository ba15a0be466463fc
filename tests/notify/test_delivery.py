"""Delivery never blocks the caller: a down channel is retried and logged, a full queue
drops (and counts) messages, and shutdown flushes within its deadline."""

from __future__ import annotations

import time

from services.notify import Notifier, NotifySettings
from services.notify.channels import load_channels
from tests.notify.sinks import HttpSink, dead_letter_event, refused_port
from tests.support import wait_for

NOTIFY_CALL_BOUND = 1.0  # seconds; a notify() call does no I/O, so this is generous


def make(*urls: str, **settings: object) -> Notifier:
    config = NotifySettings(urls=urls, **settings)  # type: ignore[arg-type]
    return Notifier(config, load_channels(config))


def timed_notify(notifier: Notifier, job_id: int) -> float:
    started = time.monotonic()
    notifier.notify(dead_letter_event(job_id))
    return time.monotonic() - started


def test_a_down_channel_is_retried_and_logged_and_never_blocks(
    http_sink: HttpSink, log_lines: list[str]
) -> None:
    down = f"json://127.0.0.1:{refused_port()}/hook"
    notifier = make(down, http_sink.url(), retries=2, retry_base_seconds=0.05, burst=50)
    slowest = max(timed_notify(notifier, n) for n in range(20))
    assert slowest < NOTIFY_CALL_BOUND
    # The live channel gets every message although the other one refuses connections.
    wait_for(lambda: len(http_sink.requests) == 20, 30, "the live channel's messages")
    wait_for(lambda: notifier.failed == 20, 30, "the down channel to be given up")
    wait_for(lambda: notifier.sent == 20, 30, "the live channel's answers to be counted")
    log = "".join(log_lines)
    assert "failed (attempt 1 of 3); retrying in" in log
    assert "failed (attempt 2 of 3); retrying in" in log
    assert "given up (3 attempt(s) failed): [pq] job 0 dead-lettered" in log
    assert notifier.close(5)


def test_a_channel_that_comes_back_receives_the_retried_message(http_sink: HttpSink) -> None:
    http_sink.refuse()  # the port refuses connections until reopened
    port = http_sink.port
    notifier = make(f"json://127.0.0.1:{port}/hook", retries=30, retry_base_seconds=0.05,
                    retry_cap_seconds=0.2)  # fmt: skip
    notifier.notify(dead_letter_event(5))
    revived = HttpSink(port=port)
    try:
        wait_for(lambda: revived.requests, 30, "the retried message")
        assert revived.requests[0].body["title"].startswith("[pq] job 5 dead-lettered")
        # The sink records a request before it answers; the notifier counts it as sent
        # only once the answer arrives, so wait for the count rather than read it.
        wait_for(lambda: notifier.sent == 1, 30, "the retried message to be counted")
        assert notifier.failed == 0
    finally:
        notifier.close(5)
        revived.close()


def test_a_full_queue_drops_and_counts_without_blocking(http_sink: HttpSink) -> None:
    http_sink.gate.clear()  # the channel hangs: the sender is stuck on the first message
    notifier = make(http_sink.url(), queue_size=5, burst=1000)
    slowest = max(timed_notify(notifier, n) for n in range(100))
    assert slowest < NOTIFY_CALL_BOUND
    wait_for(lambda: notifier.dropped >= 94, 30, "the overflow to be dropped")
    # One message in flight and at most queue_size waiting; the rest dropped, counted.
    assert notifier.dropped in (94, 95)
    http_sink.gate.set()
    assert notifier.close(10)
    assert len(http_sink.requests) + notifier.dropped == 100


def test_shutdown_gives_up_at_its_deadline_and_reports_it(log_lines: list[str]) -> None:
    down = f"json://127.0.0.1:{refused_port()}/hook"
    notifier = make(down, retries=100, retry_base_seconds=0.05, retry_cap_seconds=0.1)
    for n in range(3):
        notifier.notify(dead_letter_event(n))
    started = time.monotonic()
    assert notifier.close(0.5) is False
    assert time.monotonic() - started < 5
    assert notifier.dropped_on_close == 3
    assert "notifier closed with 3 message(s) undelivered" in "".join(log_lines)
    notifier.notify(dead_letter_event(99))  # after close: counted, not raised
    assert notifier.dropped == 4
