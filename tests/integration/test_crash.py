"""SIGKILL in the middle of writes: the database stays intact, every commit a process
reported is there, nothing uncommitted is, and the next writer is not blocked."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from pqcore import DatabaseBusy, JobFilter, JobState, Queue
from tests.backends import BACKENDS, BackendHandle
from tests.integration.conftest import Child

pytestmark = pytest.mark.integration


def job_count(queue: Queue, text: str) -> int:
    return queue.count_jobs(JobFilter(text=text))


def assert_writable_at_once(backend: BackendHandle, tag: str) -> None:
    """A fresh handle that does not wait for locks can write: no lock outlived its holder."""
    probe = backend.make(busy_timeout_ms=200, busy_retries=0)
    job = probe.enqueue(f"probe-{tag}")
    assert probe.get(job.id).status is JobState.PENDING


@pytest.mark.skipif("sqlite" not in BACKENDS, reason="holds a SQLite write transaction open")
def test_sigkill_inside_a_sqlite_write_transaction(tmp_path: Path, children: list[Child]) -> None:
    with BACKENDS["sqlite"](tmp_path) as backend:
        queue = backend.make()
        committed = queue.enqueue_many([f"committed-{i}" for i in range(10)])
        writer = Child("crash-in-write", backend.url, "--rows", "3000")
        children.append(writer)
        word, wal_size = writer.read_line().split()
        assert word == "inside-transaction"
        assert int(wal_size) > 1_000_000, "uncommitted pages never reached the WAL file"
        impatient = backend.make(busy_timeout_ms=50, busy_retries=0)
        with pytest.raises(DatabaseBusy):  # the child really holds the write lock
            impatient.enqueue("blocked")

        writer.signal(signal.SIGKILL)
        assert writer.wait() == -signal.SIGKILL

        assert_writable_at_once(backend, "after-kill")
        reopened = backend.make()
        assert reopened.doctor() == []
        assert job_count(reopened, "uncommitted-") == 0
        assert [reopened.get(j.id).data for j in committed] == [j.data for j in committed]
        assert reopened.stats().total == len(committed) + 1  # plus the probe


def test_random_sigkill_loses_no_commit(
    backend: BackendHandle, children: list[Child], tmp_path: Path
) -> None:
    rng = random.Random()
    batch = 5
    enqueued: dict[str, list[int]] = {}
    intents: list[str] = []
    completed: list[int] = []
    for round_number in range(6):
        child = Child(
            "churn",
            backend.url,
            "--tag",
            f"r{round_number}",
            "--batch",
            str(batch),
            "--consumer",
            f"churn-{round_number}",
            "--lease",
            "30",
        )
        children.append(child)
        assert child.read_line() == "ready"
        if round_number == 0:  # at least one round gets as far as a completion
            while not child.read_line().startswith("completed"):
                pass
        time.sleep(rng.uniform(0.02, 0.3))  # let it run a random while, then kill it
        child.signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
        child.rest_of_output()
        for line in child.lines:
            word, *rest = line.split()
            if word == "intent":
                intents.append(rest[0])
            elif word == "enqueued":
                enqueued[rest[0]] = [int(x) for x in rest[1:]]
            elif word == "completed":
                completed.append(int(rest[0]))
        assert_writable_at_once(backend, f"r{round_number}")

    assert enqueued and completed, "the child never got to commit anything before the kills"
    # Bring back what the killed children held: the manager, an hour later.
    later = backend.make(clock=lambda: time.time() + 3600)
    later.rescue_expired()
    queue = backend.make()
    assert queue.doctor() == []
    for tag, ids in enqueued.items():
        assert len(ids) == batch
        assert [queue.get(i).data for i in ids] == [f"{tag}{n}" for n in range(batch)]
    for tag in intents:
        # A batch is all or nothing, whether or not its commit was reported before the kill.
        assert job_count(queue, tag) in ((batch if tag in enqueued else 0), batch)
    for job_id in completed:
        events = queue.history(job_id)
        assert queue.get(job_id).status is JobState.DONE
        assert [e.action for e in events].count("complete") == 1
    whole_batches = sum(1 for tag in intents if job_count(queue, tag) == batch)
    assert queue.stats().total == whole_batches * batch + 6  # plus one probe per round
    assert queue.stats().counts["processing"] == 0
    # Everything still runs to the end (on the later clock: rescued jobs run from then on).
    while held := later.claim("finisher", limit=50):
        for job in held:
            later.complete(job.id, job.lease_token or "")
    assert queue.stats().counts["done"] == queue.stats().total
    assert queue.doctor() == []
