"""Queries the services need beyond the job lifecycle: dedupe lookup over every state
(the producer's reconciliation) and the history cursor (the manager's dead-letter feed)."""

from __future__ import annotations

import pytest

from pqcore import InvalidArgument, JobState, Queue


def test_dedupe_keys_known_covers_every_state(queue: Queue) -> None:
    for key in ("a", "b", "c", "d"):
        queue.enqueue(key, dedupe_key=key)
    queue.enqueue("no key")
    [held] = queue.claim("c1")  # "a"
    queue.complete(held.id, held.lease_token or "")
    [held] = queue.claim("c1")  # "b"
    queue.fail(held.id, held.lease_token or "", "boom", retryable=False)
    queue.cancel(3, actor="tester")  # "c"
    assert queue.get(1).status is JobState.DONE
    assert queue.dedupe_keys_known(["a", "b", "c", "d", "e", "no key"]) == {"a", "b", "c", "d"}
    assert queue.dedupe_keys_known([]) == set()


def test_events_after_is_a_cursor_over_history(queue: Queue) -> None:
    assert queue.last_event_id() == 0
    queue.enqueue("x")
    cursor = queue.last_event_id()
    assert cursor > 0
    queue.enqueue("y")
    [held] = queue.claim("c1")
    queue.fail(held.id, held.lease_token or "", "bad input", retryable=False)
    events = queue.events_after(cursor)
    assert [e.action for e in events] == ["enqueue", "claim", "dead_letter"]
    assert [e.id for e in events] == sorted(e.id for e in events)
    dead = queue.events_after(cursor, to_status=JobState.PERMANENTLY_FAILED)
    assert [(e.job_id, e.to_status) for e in dead] == [(held.id, JobState.PERMANENTLY_FAILED)]
    assert queue.events_after(queue.last_event_id()) == []
    assert len(queue.events_after(0, limit=2)) == 2
    with pytest.raises(InvalidArgument):
        queue.events_after(-1)
