"""pq's own checkpoints: SQLite's automatic (PASSIVE) ones are off on every connection pq
opens, because before SQLite 3.51.3 a PASSIVE checkpoint racing another connection's WAL
reset can corrupt the database (https://sqlite.org/wal.html#walresetbug); pq runs FULL
ones, which hold the write lock, every CHECKPOINT_EVERY_COMMITS commits, never waiting."""

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


def test_a_checkpoint_never_waits_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    with open_queue(str(path), settings=QueueSettings(db=str(path))) as queue:
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
        assert result is not None and result[0] == 1  # busy: it backfilled nothing, at once
        assert waited < queue.settings.busy_timeout_ms / 1000  # not the busy timeout
        after = queue.driver.checkpoint()
        assert after is not None and after[0] == 0 and after[1] == after[2]  # all backfilled
