"""The notifier wired into the manager: a real cycle with a dead-lettered job, a live
channel receiving the alert and a down channel that never holds the manager up."""

from __future__ import annotations

import signal
import time
import urllib.request
from pathlib import Path

from pqcore import JobState, Queue
from services.manager.events import EventBus
from services.manager.manager import Manager, ManagerSettings
from services.notify import Notifier, NotifySettings
from services.notify.channels import load_channels
from tests.backends import BackendHandle
from tests.notify.sinks import HttpSink, free_port, refused_port
from tests.services.system import System
from tests.support import wait_for

FAST = ("--rescue-interval", 0.2, "--check-interval", 0.5, "--leader-ttl", 2)


def dead_letter(queue: Queue, payload: str, error: str) -> int:
    job = queue.enqueue(payload, max_attempts=1)
    [held] = queue.claim("consumer-under-test")
    assert held.id == job.id
    queue.fail(held.id, held.lease_token or "", error)  # out of attempts: dead letter
    assert queue.get(job.id).status is JobState.PERMANENTLY_FAILED
    return job.id


def test_a_manager_cycle_alerts_on_a_dead_letter_while_a_channel_is_down(
    backend: BackendHandle, http_sink: HttpSink
) -> None:
    queue = backend.make()
    bus = EventBus()
    down = f"json://127.0.0.1:{refused_port()}/hook"
    settings = NotifySettings(
        urls=(down, http_sink.url()),
        console_url="http://console.example/?job={job_id}",
        retries=3,
        retry_base_seconds=0.05,
    )
    notifier = Notifier(settings, load_channels(settings))
    bus.subscribe(notifier)
    manager = Manager(queue, ManagerSettings(), manager_id="m1", bus=bus)
    manager._event_cursor = queue.last_event_id()

    job_id = dead_letter(queue, "jobs/report-7.csv", "KeyError: 'customer_id'")
    started = time.monotonic()
    manager.rescue_cycle()
    assert time.monotonic() - started < 10  # the cycle did not wait for any channel

    wait_for(lambda: http_sink.requests, 30, "the dead-letter alert")
    alert = http_sink.requests[0].body
    assert alert["title"] == f"[pq] job {job_id} dead-lettered: KeyError: 'customer_id'"
    for line in (
        f"Job id: {job_id}",
        "Payload: jobs/report-7.csv",
        "Error: KeyError: 'customer_id'",
        "Attempts: 1 of 1",
        f"Console: http://console.example/?job={job_id}",
    ):
        assert line in alert["message"]

    # The manager keeps working while the down channel is still being retried.
    crashed = queue.enqueue("jobs/crashed.txt").id
    queue.claim("crashed-consumer", lease_seconds=0.2)
    wait_for(lambda: _rescued(manager, queue, crashed), 30, "the next cycle's rescue")
    bus.close()
    wait_for(lambda: notifier.failed == 1, 30, "the down channel to be given up")
    assert notifier.close(5)
    assert queue.get(job_id).status is JobState.PERMANENTLY_FAILED  # alerts never touch jobs


def _rescued(manager: Manager, queue: Queue, job_id: int) -> bool:
    manager.rescue_cycle()
    return queue.get(job_id).status is JobState.PENDING


def test_pq_manager_sends_alerts_through_the_entry_point_hook(
    tmp_path: Path, backend: BackendHandle, http_sink: HttpSink
) -> None:
    system = System(tmp_path, backend)
    port = free_port()
    try:
        manager = system.start(
            "manager",
            *FAST,
            "--metrics-port",
            port,
            PQ_NOTIFY_URLS=f"json://127.0.0.1:{refused_port()}/down {http_sink.url()}",
            PQ_NOTIFY_RETRIES=2,
            PQ_NOTIFY_RETRY_BASE_SECONDS=0.1,
            PQ_NOTIFY_FLUSH_SECONDS=1,
        )
        wait_for(lambda: "is now the leader" in manager.text(), 60, "the manager to lead")
        assert "alerts on: 2 channel(s)" in manager.text()
        job_id = dead_letter(system.queue, "jobs/a.txt", "RuntimeError: disk quota")
        wait_for(lambda: http_sink.requests, 60, "the alert from pq manager")
        assert f"Job id: {job_id}" in http_sink.requests[0].body["message"]
        failed = 'pq_notifications_failed_total{channel="json",kind="dead_lettered"} 1.0'
        text = wait_for(lambda: _scrape_if(port, failed), 60, "the failure counted") or ""
        assert 'pq_notifications_sent_total{channel="json",kind="dead_lettered"} 1.0' in text

        crashed = system.queue.enqueue("jobs/b.txt").id
        system.queue.claim("crashed-consumer", lease_seconds=0.5)
        wait_for(lambda: system.queue.get(crashed).status is JobState.PENDING, 60, "a rescue")
        manager.signal(signal.SIGTERM)
        assert manager.wait(30) == 0  # the flush deadline bounds the shutdown
        assert "failed (attempt 1 of 3); retrying in" in manager.text()
        assert "notification to json://127.0.0.1" in manager.text()
    finally:
        system.stop_all()


def _scrape_if(port: int, wanted: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return None
    return text if wanted in text else None


def test_pq_manager_without_a_channel_runs_with_alerts_off(
    tmp_path: Path, backend: BackendHandle
) -> None:
    system = System(tmp_path, backend)
    try:
        manager = system.start("manager", *FAST)
        wait_for(lambda: "is now the leader" in manager.text(), 60, "the manager to lead")
        assert "alerts off: no channel" in manager.text()
        bad = system.start("manager", *FAST, PQ_NOTIFY_URLS="nonsense://x")
        wait_for(lambda: "alerts off: PQ_NOTIFY_URLS" in bad.text(), 60, "the bad URL logged")
        assert bad.alive()  # a typo in an alert URL does not stop job recovery
    finally:
        system.stop_all()
