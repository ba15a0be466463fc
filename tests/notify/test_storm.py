"""Storm control: hundreds of events make a few messages and one digest, never a flood."""

from __future__ import annotations

import time

from services.manager.events import EventKind, ManagerEvent
from services.notify import Notifier, NotifySettings
from services.notify.channels import load_channels
from services.notify.storm import StormControl
from tests.backends import FakeClock
from tests.notify.sinks import HttpSink, dead_letter_event
from tests.support import wait_for


def test_hundreds_of_dead_letters_make_a_burst_and_one_digest(http_sink: HttpSink) -> None:
    clock = FakeClock()
    settings = NotifySettings(
        urls=(http_sink.url(),), burst=3, window_seconds=300, console_url="http://c.example/"
    )
    notifier = Notifier(settings, load_channels(settings), clock=clock)
    for job_id in range(1, 401):
        notifier.notify(dead_letter_event(job_id, at=1000.0 + job_id))
        clock.advance(0.1)  # all 400 inside one 5-minute window
    wait_for(lambda: len(http_sink.requests) >= 3, 30, "the first burst")
    titles = [r.body["title"] for r in http_sink.requests]
    assert titles == [
        f"[pq] job {n} dead-lettered: ValueError: invoice total is negative" for n in (1, 2, 3)
    ]

    clock.advance(300)  # the window closes: the sender's next tick sends the digest
    wait_for(lambda: len(http_sink.requests) == 4, 30, "the digest")
    digest = http_sink.requests[3].body
    assert digest["title"] == "[pq] 400 jobs dead-lettered in the last 5 minutes"
    assert "- job 4 (jobs/invoice-4.txt), attempts 3: ValueError" in digest["message"]
    assert "... and 377 more" in digest["message"]  # 400 - 3 sent - 20 samples listed
    assert "Console: http://c.example/" in digest["message"]
    assert notifier.close(10)
    assert len(http_sink.requests) == 4
    assert notifier.storm.suppressed_total == 397


def test_each_kind_has_its_own_budget() -> None:
    clock = FakeClock()
    storm = StormControl(NotifySettings(burst=2, window_seconds=60), clock)
    out = []
    for n in range(200):
        out += storm.admit(dead_letter_event(n, at=float(n)))
        out += storm.admit(
            ManagerEvent(EventKind.STALLED_RECOVERED, job_id=n, payload="p", reason="lease")
        )
        out += storm.admit(ManagerEvent(EventKind.CONSUMER_DEAD, consumer_id=f"c{n}"))
    assert [m.kind for m in out] == ["dead_lettered", "stalled_recovered", "consumer_dead"] * 2
    clock.advance(60)
    digests = storm.due_digests()
    assert sorted(m.title for m in digests) == [
        "[pq] 200 consumers declared dead in the last 1 minute",
        "[pq] 200 jobs dead-lettered in the last 1 minute",
        "[pq] 200 stalled jobs recovered in the last 1 minute",
    ]
    assert storm.due_digests() == []  # a digest is sent once


def test_repeats_are_deduplicated_within_the_dedup_window() -> None:
    clock = FakeClock()
    storm = StormControl(NotifySettings(burst=100, window_seconds=10, dedup_seconds=600), clock)
    backlog = ManagerEvent(EventKind.BACKLOG, value=5000, threshold=1000)
    same = dead_letter_event(7, at=123.0)
    sent = []
    for _ in range(300):  # the manager re-announcing the same facts every cycle
        sent += storm.admit(backlog)
        sent += storm.admit(same)
        sent += storm.admit(
            ManagerEvent(EventKind.STALLED_RECOVERED, job_id=9, payload="p", reason="lease")
        )
        clock.advance(1)
    assert [m.kind for m in sent] == ["backlog", "dead_lettered", "stalled_recovered"]
    assert storm.duplicates_total == 897
    clock.advance(600)  # a condition that lasts is announced again after the dedup window
    assert [m.kind for m in storm.admit(backlog)] == ["backlog"]
    # A resubmitted job that dies again is news, even within the window.
    assert [m.kind for m in storm.admit(dead_letter_event(7, at=999.0))] == ["dead_lettered"]


def test_a_burst_that_stays_under_the_limit_makes_no_digest() -> None:
    clock = FakeClock()
    storm = StormControl(NotifySettings(burst=5, window_seconds=30), clock)
    assert len([m for n in range(5) for m in storm.admit(dead_letter_event(n))]) == 5
    clock.advance(31)
    assert storm.due_digests() == []


def test_shutdown_sends_the_digest_of_an_open_window(http_sink: HttpSink) -> None:
    settings = NotifySettings(urls=(http_sink.url(),), burst=1, window_seconds=3600)
    notifier = Notifier(settings, load_channels(settings))
    started = time.monotonic()
    for job_id in range(250):
        notifier.notify(dead_letter_event(job_id))
    assert notifier.close(10)
    assert time.monotonic() - started < 3600  # not waiting for the window to close
    titles = [r.body["title"] for r in http_sink.requests]
    assert len(titles) == 2
    assert titles[1].startswith("[pq] 250 jobs dead-lettered in the last ")
