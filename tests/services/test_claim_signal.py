"""The "jobs pending, nothing claimed" signal, read from a real SQLite queue.

The history is written through pqcore at chosen times (a queue handle on a hand-moved
clock), then read the way the manager's scrape reads it: its ``QueueCollector`` on a
fresh handle of the same database file, as Prometheus would see the gauges.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pqcore import Queue, open_queue
from services.common import claims
from services.common.claims import ClaimHealth, ClaimWatch
from services.manager.metrics import QueueCollector
from tests.backends import FakeClock

NOW = 1_800_000_000.0


def writer(db: Path, clock: FakeClock) -> Queue:
    return open_queue(str(db), clock=clock)


def reader(db: Path, now: float) -> Queue:
    """A read handle whose clock says ``now``, as the manager's would."""
    return open_queue(str(db), create=False, clock=lambda: now)


def scrape(db: Path, now: float, watch: ClaimWatch | None = None) -> dict[str, float]:
    """One scrape of a manager's queue collector: ``{series: value}``."""
    registry = CollectorRegistry()
    watch = watch or ClaimWatch(clock=lambda: now)
    registry.register(QueueCollector(lambda: reader(db, now), watch))
    values = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return values


def claim_and_complete(queue: Queue, consumer: str) -> None:
    [job] = queue.claim(consumer)
    queue.complete(job.id, job.lease_token or "")


def test_jobs_waiting_while_nothing_is_claimed(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    clock = FakeClock(NOW - 3600)
    with writer(db, clock) as queue:
        queue.enqueue("jobs/early.txt")
        claim_and_complete(queue, "worker-1")  # the last claim: an hour ago
        clock.now = NOW - 600
        queue.enqueue("jobs/waiting.txt")  # runnable since ten minutes
        clock.now = NOW - 5
        queue.consumer_register("worker-1", host="h", pid=1, queues="")  # live, idle
    metrics = scrape(db, NOW)
    assert metrics["pq_last_claim_age_seconds"] == 3600.0
    assert metrics["pq_oldest_pending_age_seconds"] >= 600.0
    assert metrics["pq_consumers{state=idle}"] == 1.0

    with reader(db, NOW) as queue:
        health = ClaimWatch(clock=lambda: NOW).health(queue)
    assert health.unclaimed and health.live_consumers == 1
    assert "1 live consumer(s) are registered but took none" in health.describe()


def test_a_claim_ends_the_silence(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    clock = FakeClock(NOW - 3600)
    with writer(db, clock) as queue:
        queue.enqueue_many(["jobs/1.txt", "jobs/2.txt", "jobs/3.txt"])
        claim_and_complete(queue, "worker-1")
    watch = ClaimWatch(clock=lambda: NOW)
    assert scrape(db, NOW, watch)["pq_last_claim_age_seconds"] == 3600.0
    with writer(db, clock) as queue:
        clock.now = NOW - 30
        claim_and_complete(queue, "worker-2")  # found by the same watch's next look
    assert scrape(db, NOW, watch)["pq_last_claim_age_seconds"] == 30.0
    with reader(db, NOW) as queue:
        health = watch.health(queue)
    assert health.oldest_pending_age is not None and health.oldest_pending_age >= 3600
    assert not health.unclaimed  # old backlog, but work is being taken: slow, not stuck


def test_no_consumer_registered_at_all(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    with writer(db, FakeClock(NOW - 900)) as queue:
        queue.enqueue("jobs/never-claimed.txt")
    metrics = scrape(db, NOW)
    # never any claim: silent since the oldest history row read, the enqueue
    assert metrics["pq_last_claim_age_seconds"] == 900.0
    assert sum(v for k, v in metrics.items() if k.startswith("pq_consumers{")) == 0
    with reader(db, NOW) as queue:
        health = ClaimWatch(clock=lambda: NOW).health(queue)
    assert health.unclaimed and health.live_consumers == 0
    assert "no live consumer is registered in this database" in health.describe()


def test_an_idle_queue_or_a_fresh_job_is_not_unclaimed(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    clock = FakeClock(NOW - 7200)
    with writer(db, clock) as queue:
        queue.enqueue("jobs/1.txt")
        claim_and_complete(queue, "worker-1")
        with reader(db, NOW) as read:
            idle = ClaimWatch(clock=lambda: NOW).health(read)
        assert idle.oldest_pending_age is None and not idle.unclaimed  # nothing waits
        clock.now = NOW - 60
        queue.enqueue("jobs/fresh.txt")  # waits one minute after two silent hours
        queue.enqueue("jobs/later.txt", delay=3600)  # not runnable yet: not waiting
    with reader(db, NOW) as queue:
        fresh = ClaimWatch(clock=lambda: NOW).health(queue)
    assert fresh.seconds_since_claim == 7200.0
    assert fresh.oldest_pending_age is not None and 60 <= fresh.oldest_pending_age < 300
    assert not fresh.unclaimed


def test_a_fresh_watch_claims_no_silence_it_did_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With more history than it reads back, the silence counts from the oldest row read."""
    monkeypatch.setattr(claims, "BACKSCAN_EVENTS", 5)
    db = tmp_path / "queue.db"
    clock = FakeClock(NOW - 3600)
    with writer(db, clock) as queue:
        queue.enqueue("jobs/0.txt")
        claim_and_complete(queue, "worker-1")  # an hour ago, beyond the 5 rows read back
        for n in range(10):
            clock.now = NOW - 100 + n
            queue.enqueue(f"jobs/{n + 1}.txt")
    age = scrape(db, NOW)["pq_last_claim_age_seconds"]
    assert age == 100 - 5  # the oldest of the 5 newest rows: enqueue number 5, at NOW - 95


def test_claims_beyond_one_page_are_all_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(claims, "PAGE", 3)
    db = tmp_path / "queue.db"
    clock = FakeClock(NOW - 1000)
    with writer(db, clock) as queue:
        queue.enqueue_many([f"jobs/{n}.txt" for n in range(10)])
        for n in range(10):
            clock.now = NOW - 1000 + 10 * n
            queue.claim(f"worker-{n}")
    # ten claims, three to a page: the newest (NOW - 910) is found in the fourth page
    assert scrape(db, NOW)["pq_last_claim_age_seconds"] == 910.0


def test_the_health_window_is_the_documented_five_minutes() -> None:
    waiting = ClaimHealth(oldest_pending_age=300.0, seconds_since_claim=300.0, live_consumers=2)
    assert waiting.window == 300.0 and waiting.unclaimed
    assert not ClaimHealth(299.0, 3600.0, 2).unclaimed
    assert not ClaimHealth(3600.0, 299.0, 2).unclaimed
    assert not ClaimHealth(None, 3600.0, 0).unclaimed
