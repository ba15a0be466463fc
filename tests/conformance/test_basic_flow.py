from __future__ import annotations

from pqcore import JobState, Queue


def test_enqueue_claim_complete_records_history(queue: Queue) -> None:
    job = queue.enqueue("jobs/0001.txt")
    assert job.status is JobState.PENDING
    [held] = queue.claim("consumer-1")
    assert held.id == job.id and held.lease_token and held.attempts == 1
    done = queue.complete(held.id, held.lease_token)
    assert done.status is JobState.DONE and done.lease_token is None
    actions = [e.action for e in queue.history(job.id)]
    assert actions == ["enqueue", "claim", "complete"]
    assert queue.doctor() == []
