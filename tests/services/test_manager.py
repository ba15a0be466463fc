"""The manager: leadership, rescue of expired and stalled jobs, retries, metrics, events."""

from __future__ import annotations

import signal
import threading
import urllib.request

from pqcore import JobState
from services.manager.events import EventBus, EventKind, ManagerEvent
from services.manager.manager import Manager, ManagerSettings
from tests.backends import BackendHandle, FakeClock
from tests.services.system import System, pid_of
from tests.support import free_port, wait_for

FAST = ("--rescue-interval", 0.2, "--check-interval", 0.5, "--leader-ttl", 2)


def leader_pid(system: System) -> int | None:
    holder = system.queue.leader("manager")
    return pid_of(holder[0].removeprefix("manager-")) if holder else None


def test_one_manager_leads_and_a_successor_takes_over_when_it_stops(system: System) -> None:
    first = system.start("manager", *FAST)
    wait_for(lambda: leader_pid(system) == first.pid, 30, "the first manager to lead")
    second = system.start("manager", *FAST)
    wait_for(lambda: "standing by" in second.text(), 30, "the second manager to stand by")
    assert leader_pid(system) == first.pid
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0
    assert "resigned the leadership" in first.text()
    wait_for(lambda: leader_pid(system) == second.pid, 30, "the second manager to take over")


def test_manager_rescues_expired_and_stalled_jobs_and_schedules_retries(
    system: System, backend: BackendHandle
) -> None:
    queue = backend.make(backoff_base_seconds=0.1, backoff_cap_seconds=0.2)
    expired, stalled, failing = (queue.enqueue(p).id for p in ("expired", "stalled", "failing"))
    [held] = queue.claim("crashed-consumer", lease_seconds=0.5)  # never heartbeats
    assert held.id == expired
    [busy] = queue.claim("stuck-consumer", lease_seconds=600)  # alive but stuck
    [fail] = queue.claim("failing-consumer")
    queue.fail(fail.id, fail.lease_token or "", "try again")
    system.start("manager", *FAST, "--stall-timeout", 1)

    def action(job_id: int, name: str) -> bool:
        return any(e.action == name for e in queue.history(job_id))

    wait_for(lambda: action(expired, "rescue"), 30, "the expired lease rescued")
    wait_for(lambda: action(failing, "schedule_retry"), 30, "the failed job retried")
    wait_for(lambda: action(stalled, "rescue"), 30, "the stalled job rescued")
    assert busy.id == stalled
    for job_id in (expired, stalled, failing):
        assert queue.get(job_id).status is JobState.PENDING
    detail = next(e.detail for e in queue.history(stalled) if e.action == "rescue") or ""
    assert "processing longer than 1s" in detail


def test_a_running_manager_picks_up_a_changed_stall_timeout(system: System) -> None:
    stuck = system.queue.enqueue("stuck").id
    system.queue.claim("stuck-consumer", lease_seconds=600)  # alive (by its lease), stuck
    manager = system.start("manager", *FAST, "--stall-timeout", 3600)
    wait_for(lambda: leader_pid(system) == manager.pid, 30, "the manager to lead")
    system.queue.config_set("stall_timeout", 1, actor="alice")
    wait_for(
        lambda: any(e.action == "rescue" for e in system.queue.history(stuck)),
        30,
        "the stuck job rescued under the new stall timeout, without a restart",
    )
    assert "runtime settings changed: {'stall_timeout': 1.0}" in manager.text()


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return str(response.read().decode())


def test_metrics_endpoints_export_the_documented_names(system: System) -> None:
    for payload in ("job-a.txt", "job-b.txt", "job-c.txt"):
        system.write_job_file(payload)
        system.queue.enqueue(payload)
    system.queue.claim("someone", lease_seconds=600)
    system.queue.pause("default", actor="test")
    system.queue.set_limits("default", concurrency=4, actor="test")
    port = free_port()
    system.start("manager", *FAST, "--metrics-port", port)
    text = wait_for(lambda: _try_scrape(port), 30, "the manager's metrics") or ""
    assert 'pq_queue_jobs{status="pending"} 2.0' in text
    assert 'pq_queue_jobs{status="processing"} 1.0' in text
    assert "pq_dead_letter_jobs 0.0" in text
    assert 'pq_build_info{role="manager",version="0.1.0"} 1.0' in text
    wait_for(lambda: "pq_manager_is_leader 1.0" in scrape(port), 30, "leadership exported")
    assert "pq_jobs_claimed_total" not in text  # a consumer's metric: not the manager's
    assert 'pq_queue_paused{queue="default"} 1.0' in text
    assert 'pq_queue_limit{limit="concurrency_limit",queue="default"} 4.0' in text
    system.queue.resume("default", actor="test")
    wait_for(
        lambda: 'pq_queue_paused{queue="default"} 0.0' in scrape(port), 30, "the resume exported"
    )

    base = free_port()
    system.start(
        "consumer",
        "--work-min",
        0,
        "--work-max",
        0,
        "--metrics-port",
        base,
        "--metrics-port-offset",
        0,
    )
    wait_for(lambda: system.count(JobState.DONE) == 2, 30, "the consumer to finish")
    consumer = scrape(base)
    assert 'pq_jobs_completed_total{queue="default"} 2.0' in consumer
    assert "pq_consumer_busy 0.0" in consumer
    # The consumer reports itself idle at its next registry heartbeat, not with the
    # completion that made the count above: wait for that heartbeat, then the scrape.
    wait_for(
        lambda: 'pq_consumers{state="idle"} 1.0' in scrape(port), 30, "the idle consumer exported"
    )


def _try_scrape(port: int) -> str | None:
    try:
        return scrape(port)
    except OSError:
        return None


def test_manager_events_reach_subscribers_without_blocking_the_cycle(
    backend: BackendHandle,
) -> None:
    clock = FakeClock()
    queue = backend.make(clock=clock)
    bus = EventBus()
    received: list[ManagerEvent] = []
    release = threading.Event()

    def slow(event: ManagerEvent) -> None:
        release.wait(30)

    def broken(event: ManagerEvent) -> None:
        raise RuntimeError("notifier down")

    for subscriber in (slow, broken, received.append):
        bus.subscribe(subscriber)
    settings = ManagerSettings(backlog_threshold=1, oldest_pending_threshold=5, consumer_timeout=60)
    monotonic = FakeClock()  # the manager's own clock, which confirms expired leases
    manager = Manager(queue, settings, manager_id="m1", bus=bus, clock=monotonic)
    manager._event_cursor = queue.last_event_id()

    crashed = queue.enqueue("jobs/crashed.txt").id
    queue.claim("c1", lease_seconds=10)
    doomed = queue.enqueue("jobs/doomed.txt", max_attempts=1).id
    [held] = queue.claim("c2")
    queue.fail(held.id, held.lease_token or "", "bad input")  # out of attempts: dead letter
    queue.consumer_register("c3", host="h", pid=1, queues="*")
    queue.enqueue("jobs/waiting-1.txt")
    queue.enqueue("jobs/waiting-2.txt")
    clock.advance(100)
    assert manager.lease_rescue.rescue_expired() == []  # first look: the lease is noted
    monotonic.advance(5)  # half of its 10 s lease later, still unrenewed: rescued

    manager.rescue_cycle()  # returns although `slow` blocks the delivery thread
    manager.health_cycle()
    release.set()
    bus.close()

    kinds = [e.kind for e in received]
    assert kinds == [
        EventKind.STALLED_RECOVERED,
        EventKind.CONSUMER_DEAD,
        EventKind.DEAD_LETTERED,
        EventKind.OLDEST_PENDING_OVER_THRESHOLD,
        EventKind.BACKLOG,
    ]
    rescued, dead, lettered, oldest, backlog = received
    assert (rescued.job_id, rescued.payload, rescued.reason) == (
        crashed,
        "jobs/crashed.txt",
        "lease_expired",
    )
    assert dead.consumer_id == "c3"
    assert (lettered.job_id, lettered.payload, lettered.attempts) == (doomed, "jobs/doomed.txt", 1)
    assert "bad input" in (lettered.error or "")
    assert oldest.value is not None and oldest.value >= 100 and oldest.threshold == 5
    assert backlog.value == 3 and backlog.counts and backlog.counts["pending"] == 3
