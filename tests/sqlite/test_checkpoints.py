"""pq's own checkpoints: SQLite's automatic (PASSIVE) ones are off on every connection pq
opens, because before SQLite 3.51.3 a PASSIVE checkpoint racing another connection's WAL
reset can corrupt the database (https://sqlite.org/wal.html#walresetbug); pq runs FULL
ones, which hold the write lock, every CHECKPOINT_EVERY_COMMITS commits. A FULL one that
cannot get the lock runs as a PASSIVE one, so pq's waits for the lock instead, and runs
none if it never comes."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from pqcore import QueueSettings, open_queue
from pqcore.drivers.sqlite import CHECKPOINT_EVERY_COMMITS


def test_automatic_checkpoints_are_off_on_every_connection(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with open_queue(str(path), settings=QueueSettings(db=str(path))) as queue:
        queue.enqueue("a")
        conn = queue.driver.connection()
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        seen: list[int] = []
        worker = threading.Thread(  # another thread: its own connection
            target=lambda: seen.append(
                queue.driver.connection().execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            )
        )
        worker.start()
        worker.join()
        assert seen == [0]


def test_the_wal_is_backfilled_and_reused_as_commits_go_on(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    wal = Path(str(path) + "-wal")
    with open_queue(str(path), settings=QueueSettings(db=str(path))) as queue:
        for n in range(CHECKPOINT_EVERY_COMMITS - 1):  # the queue's first commit made it
            queue.enqueue(f"job {n}")
        one_period = wal.stat().st_size  # the WAL before the first checkpoint
        for n in range(CHECKPOINT_EVERY_COMMITS * 9):
            queue.enqueue(f"more {n}")
        # Without checkpoints the WAL would hold all ten periods' commits; with them it
        # is backfilled, reset and reused: it stays at about one period's size.
        assert wal.stat().st_size < 1.5 * one_period
        assert queue.stats().counts["pending"] == CHECKPOINT_EVERY_COMMITS * 10 - 1
        assert queue.doctor() == []


def test_a_checkpoint_waits_for_a_writer_and_then_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with open_queue(str(path), settings=QueueSettings(db=str(path))) as queue:
        queue.enqueue("a")
        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE jobs SET attempts = attempts")  # frames the commit will add
        releaser = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
        releaser.start()
        try:
            started = time.monotonic()
            result = queue.driver.checkpoint()
            waited = time.monotonic() - started
        finally:
            releaser.join()
            holder.close()
        # With busy_timeout 0 it came back at once, busy, having run as a PASSIVE
        # checkpoint beside the writer: the race with a WAL reset that pq avoids.
        assert waited >= 0.25
        assert result is not None and result[0] == 0 and result[1] == result[2]
        assert queue.stats().counts["pending"] == 1 and queue.doctor() == []


def test_a_checkpoint_whose_lock_never_comes_is_skipped_not_degraded(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    reported: list[Exception] = []
    settings = QueueSettings(db=str(path), busy_timeout_ms=300)
    with open_queue(str(path), settings=settings) as queue:
        queue.on_storage_error(reported.append)
        queue.enqueue("a")
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            started = time.monotonic()
            result = queue.driver.checkpoint()
            waited = time.monotonic() - started
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert result is None  # no checkpoint ran: a PASSIVE one would have said (1, n, n)
        assert 0.25 <= waited < 5  # the writers' patience, not SQLite's 5 s default
        assert reported == []  # a lock held by another writer is no storage error
        after = queue.driver.checkpoint()
        assert after is not None and after[0] == 0 and after[1] == after[2]  # all backfilled
