"""Claims commit at the configured synchronous level like every other write (one committed
at NORMAL could be lost to another writer's failed fsync, and with it every later commit:
tests/powerloss/test_disk_errors.py), and the connection is left as it was."""

from __future__ import annotations

from pathlib import Path

from pqcore import JobState, Outcome, QueueSettings, open_queue

FULL = 2


def test_a_bare_claim_is_committed_and_the_connection_stays_full(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    queue = open_queue(path, settings=QueueSettings(db=path, sqlite_synchronous="FULL"))
    observer = open_queue(path, settings=QueueSettings(db=path))
    queue.enqueue_many(["a", "b"])
    [first] = queue.claim("c1")
    conn = queue.driver.connection()
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == FULL
    assert observer.get(first.id).status is JobState.PROCESSING  # committed, visible
    result = queue.settle_and_claim([Outcome(first.id, first.lease_token or "")], "c1")
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == FULL
    assert observer.get(first.id).status is JobState.DONE
    assert [j.data for j in result.claimed] == ["b"]
    queue.close()
    observer.close()
