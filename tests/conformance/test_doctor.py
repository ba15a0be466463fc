"""The audit: clean after a busy mixed workload through several queue handles."""

from __future__ import annotations

from pqcore import EnqueueRequest, JobFilter, JobState, Outcome, Transition
from tests.backends import FakeClock, QueueMaker
from tests.conformance.helpers import token


def test_doctor_is_clean_after_a_mixed_workload(make_queue: QueueMaker, clock: FakeClock) -> None:
    producer = make_queue(clock=clock, backoff_base_seconds=1, backoff_cap_seconds=2)
    worker = make_queue(clock=clock, backoff_base_seconds=1, backoff_cap_seconds=2)
    manager = make_queue(clock=clock, backoff_base_seconds=1, backoff_cap_seconds=2)
    producer.enqueue_many(
        EnqueueRequest(f"job-{i}", queue=("a", "b")[i % 2], priority=i % 3, max_attempts=2)
        for i in range(60)
    )
    producer.enqueue("dupe", dedupe_key="k")
    producer.enqueue("dupe again", dedupe_key="k")
    outcomes: list[Outcome] = []
    for round_number in range(40):
        result = worker.settle_and_claim(outcomes, "w1", limit=3, lease_seconds=5)
        outcomes = []
        for n, job in enumerate(result.claimed):
            kind = ("done", "failed", "release", "stall")[(round_number + n) % 4]
            if kind == "stall":
                continue  # never reported: the manager rescues it
            outcomes.append(Outcome(job.id, token(job), kind, "err", retryable=n % 2 == 0))
        clock.advance(3)
        manager.rescue_expired()
        manager.schedule_retries()
        if round_number == 20:
            manager.bulk_action(
                Transition.RESUBMIT, JobFilter(statuses=(JobState.PERMANENTLY_FAILED,)), actor="op"
            )
    worker.settle_and_claim(outcomes, "w1", limit=0)
    manager.purge_done(30)
    for queue in (producer, worker, manager):
        assert queue.doctor() == []
    stats = manager.stats()
    assert stats.total == sum(stats.counts.values()) == manager.count_jobs()
