"""Pausing a queue and limiting it (pqcore.controls), on every backend."""

from __future__ import annotations

import json
import threading
import time

import pytest

from pqcore import EnqueueRequest, InvalidArgument, Job, JobState, Queue
from pqcore.driver import Session
from tests.backends import FakeClock, QueueMaker
from tests.conformance.helpers import token


def fill(queue: Queue, name: str, n: int, **options: object) -> list[int]:
    return [queue.enqueue(f"{name}-{i}", queue=name, **options).id for i in range(n)]  # type: ignore[arg-type]


def test_a_paused_queue_takes_enqueues_lets_running_jobs_finish_and_is_never_claimed(
    queue: Queue,
) -> None:
    fill(queue, "email", 2)
    running = queue.claim("c1", queues=["email"])[0]
    fill(queue, "other", 1)
    control = queue.pause("email", actor="alice", reason="provider outage")
    assert (control.paused, control.paused_by, control.pause_reason) == (
        True,
        "alice",
        "provider outage",
    )
    queue.enqueue("late", queue="email")  # still accepted
    for queues in (None, ["email"], ["email", "other"]):
        assert all(job.queue != "email" for job in queue.claim("c2", limit=5, queues=queues))
    assert queue.stats().paused_queues == ["email"]
    assert queue.stats("email").paused_queues == ["email"]
    assert queue.stats("other").paused_queues == []
    assert queue.wait_for_jobs(0.05, ["email"]) is False
    assert queue.complete(running.id, token(running)).status is JobState.DONE

    assert queue.resume("email", actor="bob") is None  # nothing else holds it
    assert queue.controls() == {}
    assert queue.wait_for_jobs(0.05, ["email"]) is True
    assert len(queue.claim("c2", limit=5, queues=["email"])) == 2
    trail = [(e.actor, e.action, e.target) for e in queue.audit_log(target="queue:email")]
    assert trail == [("bob", "resume", "queue:email"), ("alice", "pause", "queue:email")]
    assert queue.audit_log()[1].detail == "provider outage"


def test_pausing_an_unknown_queue_is_refused_and_changes_nothing(queue: Queue) -> None:
    fill(queue, "email", 1)
    with pytest.raises(InvalidArgument, match=r"unknown queue 'emial'.*email"):
        queue.pause("emial", actor="alice")
    with pytest.raises(InvalidArgument, match="invalid queue name"):
        queue.pause("bad name!", actor="alice")
    assert queue.controls() == {} and queue.audit_log() == []


def test_a_concurrency_limit_caps_running_jobs_and_frees_a_slot_per_finished_job(
    queue: Queue,
) -> None:
    fill(queue, "q", 5)
    queue.set_limits("q", concurrency=2, actor="alice")
    first = queue.claim("c1", limit=5)
    assert len(first) == 2
    assert queue.claim("c2", limit=5, queues=["q"]) == []
    assert queue.wait_for_jobs(0.05) is False  # full: nothing to claim, no busy loop
    queue.complete(first[0].id, token(first[0]))
    assert queue.wait_for_jobs(0.05) is True
    assert len(queue.claim("c2", limit=5, queues=["q", "x"])) == 1
    assert queue.set_limits("q", concurrency=None, actor="alice") is None
    assert len(queue.claim("c3", limit=5)) == 2  # lifted: the ordinary claim takes it


def test_concurrent_claimers_on_separate_connections_never_exceed_the_limit(
    make_queue: QueueMaker, clock: FakeClock
) -> None:
    setup = make_queue(clock=clock)
    fill(setup, "q", 40)
    setup.set_limits("q", concurrency=3, actor="alice")
    claimers = [make_queue(clock=clock) for _ in range(6)]
    claimed: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(len(claimers))

    def claim_repeatedly(q: Queue, n: int) -> None:
        start.wait()
        for _ in range(15):
            jobs = q.claim(f"c{n}", limit=2)
            with lock:
                claimed.extend(job.id for job in jobs)

    threads = [
        threading.Thread(target=claim_repeatedly, args=(q, n)) for n, q in enumerate(claimers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == len(set(claimed)) == 3
    assert setup.stats("q").counts["processing"] == 3
    assert setup.doctor() == []


def test_a_per_key_concurrency_limit_runs_one_job_per_key(queue: Queue) -> None:
    ids = {}
    for i, key in enumerate(["a", "a", "b", "b", None]):
        ids[i] = queue.enqueue(f"job-{i}", queue="q", concurrency_key=key).id
    queue.set_limits("q", key_concurrency=1, actor="alice")
    first = queue.claim("c1", limit=10)
    assert sorted(job.id for job in first) == [ids[0], ids[2], ids[4]]
    assert {job.concurrency_key for job in first} == {"a", "b", None}
    assert queue.claim("c1", limit=10) == []
    assert queue.wait_for_jobs(0.05) is False
    done_a = next(job for job in first if job.concurrency_key == "a")
    queue.complete(done_a.id, token(done_a))
    assert queue.wait_for_jobs(0.05) is True
    assert [job.id for job in queue.claim("c1", limit=10)] == [ids[1]]


def test_a_rate_limit_allows_so_many_claims_per_sliding_window(
    queue: Queue, clock: FakeClock
) -> None:
    fill(queue, "api", 10)
    queue.set_limits("api", rate=3, rate_period=10, actor="alice")
    assert len(queue.claim("c1", limit=10)) == 3
    clock.advance(5)
    assert queue.claim("c1", limit=10) == []
    assert queue.wait_for_jobs(0.05) is False
    clock.advance(5.5)  # the first three left the window
    assert queue.wait_for_jobs(0.05) is True
    assert len(queue.claim("c1", limit=1)) == 1
    assert len(queue.claim("c1", limit=10)) == 2
    control = queue.controls()["api"]
    assert (control.rate_limit, control.rate_period, control.concurrency_limit) == (3, 10.0, None)


def test_a_limited_claim_takes_its_time_when_its_turn_comes_not_when_it_began(
    make_queue: QueueMaker,
) -> None:
    """A rate window is only as good as the claim times in it. A claim that waited for
    the queue's turn (another claimer held it) must count the window from when it got the
    turn: counted from when its transaction began, it could miss claims a later turn had
    already pruned as past, and let more than the limit through (seen in a chaos run on
    PostgreSQL: 6 claims in 1 s at a limit of 5)."""
    queue = make_queue()  # the real clock: the wait below is real
    fill(queue, "api", 2)
    queue.set_limits("api", rate=5, rate_period=1, actor="alice")
    holder = make_queue()
    turn_taken, release = threading.Event(), threading.Event()
    released_after: list[float] = []

    def hold_the_turn(session: Session) -> None:
        assert session.one("control_lock", {"queue": "api"}) is not None
        turn_taken.set()
        assert release.wait(10)
        released_after.append(time.time())  # the turn passes at the commit, after this

    hold = threading.Thread(target=holder.driver.write, args=(hold_the_turn,))
    hold.start()
    assert turn_taken.wait(10)
    claimed: list[Job] = []
    claim = threading.Thread(target=lambda: claimed.extend(queue.claim("c1")))
    began = time.time()
    claim.start()
    time.sleep(0.5)
    assert claimed == []  # still waiting for its turn
    release.set()
    hold.join(10)
    claim.join(10)
    assert len(claimed) == 1
    assert claimed[0].started_at is not None
    assert claimed[0].started_at >= released_after[0] - 0.001 > began + 0.4
    (event,) = [e for e in queue.history(claimed[0].id) if e.action == "claim"]
    assert event.at == claimed[0].started_at
    holder.close()


def test_a_per_key_rate_limit(queue: Queue, clock: FakeClock) -> None:
    for i, key in enumerate(["a", "a", "b"]):
        queue.enqueue(f"job-{i}", queue="q", concurrency_key=key)
    queue.set_limits("q", key_rate=1, rate_period=10, actor="alice")
    assert sorted(j.concurrency_key or "" for j in queue.claim("c1", limit=10)) == ["a", "b"]
    assert queue.claim("c1", limit=10) == []
    clock.advance(10.5)
    assert [j.concurrency_key for j in queue.claim("c1", limit=10)] == ["a"]


def test_limits_and_a_pause_combine_and_lifting_one_keeps_the_other(queue: Queue) -> None:
    fill(queue, "q", 3)
    queue.set_limits("q", concurrency=1, actor="alice")
    queue.pause("q", actor="alice")
    assert queue.claim("c1", limit=3) == []
    kept = queue.resume("q", actor="alice")
    assert kept is not None and kept.concurrency_limit == 1 and not kept.paused
    assert len(queue.claim("c1", limit=3)) == 1
    entry = queue.audit_log(target="queue:q")[-1]
    assert entry.action == "set_limits"
    assert json.loads(entry.new_value or "{}")["concurrency_limit"] == 1


@pytest.mark.parametrize(
    "options, message",
    [
        ({"concurrency": -1}, "concurrency limit must be from 0"),
        ({"concurrency": 2.5}, "whole number"),
        ({"key_concurrency": 0}, "key-concurrency limit must be from 1"),
        ({"rate": 5, "rate_period": 0}, "rate period must be more than 0"),
        ({"rate": True}, "whole number"),
        ({}, "at least one limit"),
    ],
)
def test_a_bad_limit_is_refused_and_changes_nothing(
    queue: Queue, options: dict[str, object], message: str
) -> None:
    fill(queue, "q", 1)
    queue.set_limits("q", concurrency=4, actor="alice")
    before = queue.controls()
    with pytest.raises(InvalidArgument, match=message):
        queue.set_limits("q", actor="alice", **options)  # type: ignore[arg-type]
    assert queue.controls() == before
    assert len(queue.audit_log()) == 1


def test_every_enqueue_path_stores_the_concurrency_key(queue: Queue) -> None:
    one = queue.enqueue("one", concurrency_key="k1")
    deduped = queue.enqueue("two", dedupe_key="d", concurrency_key="k2")
    many = queue.enqueue_many(
        [EnqueueRequest("three", concurrency_key="k3"), EnqueueRequest("four"), "five"]
    )
    keys = [queue.get(j.id).concurrency_key for j in [one, deduped, *many]]
    assert keys == ["k1", "k2", "k3", None, None]
    with pytest.raises(InvalidArgument, match="concurrency key must be non-empty"):
        queue.enqueue("x", concurrency_key="")
