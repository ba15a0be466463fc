"""pq's own checkpoints: SQLite's automatic (PASSIVE) ones are off on every connection pq
opens, because before SQLite 3.51.3 a PASSIVE checkpoint racing another connection's WAL
reset can corrupt the database (https://sqlite.org/wal.html#walresetbug); pq runs FULL
ones, which hold the write lock, never waiting, spaced so that each copies about
CHECKPOINT_FRAMES frames (a long one keeps every other writer waiting)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from pqcore import QueueSettings, open_queue
from pqcore.drivers.sqlite import (
    CHECKPOINT_EVERY_COMMITS,
    CHECKPOINT_FIRST_AFTER,
    CHECKPOINT_FRAMES,
    commits_between_checkpoints,
)
from pqcore.worker import Worker

PAGE = 4096


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
        for n in range(CHECKPOINT_FIRST_AFTER - 1):  # the queue's first commit made it
            queue.enqueue(f"job {n}")
        first_period = wal.stat().st_size  # the WAL before the first checkpoint
        for n in range(2_000):
            queue.enqueue(f"more {n}")
        # Without checkpoints the WAL would hold every commit (about 11 frames each);
        # with them it is backfilled, reset and reused: a checkpoint's worth at most.
        assert wal.stat().st_size < max(first_period, CHECKPOINT_FRAMES * PAGE) * 1.5
        assert queue.stats().counts["pending"] == CHECKPOINT_FIRST_AFTER - 1 + 2_000
        assert queue.doctor() == []


def test_big_commits_are_checkpointed_sooner_so_no_checkpoint_holds_the_lock_long(
    tmp_path: Path,
) -> None:
    """A Worker's settle-and-claim of 32 jobs writes about 35 frames: a checkpoint every
    200 such commits copied 7,000 frames and more with the write lock held (55-60 ms
    with two Workers, longer than their outcomes may wait)."""
    path = tmp_path / "q.db"
    wal = Path(str(path) + "-wal")
    with open_queue(str(path), settings=QueueSettings(db=str(path))) as queue:
        for n in range(10):
            queue.enqueue_many([f"batch {n} job {k}" for k in range(1_000)])
        done = 0
        with Worker(queue, "w1", batch=32) as worker:
            while (job := worker.next()) is not None:
                worker.done(job)
                done += 1
        assert done == 10_000
        assert queue.driver._local.checkpoint_every < CHECKPOINT_EVERY_COMMITS / 2
        # The WAL file keeps its largest size: no period ever held twice the target.
        assert wal.stat().st_size < 2 * CHECKPOINT_FRAMES * (PAGE + 24)
        assert queue.doctor() == []


def test_the_checkpoint_interval_follows_the_frames_the_last_one_found() -> None:
    assert commits_between_checkpoints(16, (0, 4 * CHECKPOINT_FRAMES, 0)) == 4
    assert commits_between_checkpoints(4, (0, CHECKPOINT_FRAMES // 4, 0)) == 16
    assert commits_between_checkpoints(100, (0, 1, 1)) == CHECKPOINT_EVERY_COMMITS  # at most
    assert commits_between_checkpoints(1, (0, 10**9, 0)) == 1  # at least one commit
    assert commits_between_checkpoints(7, None) == 7  # failed: nothing learned
    assert commits_between_checkpoints(7, (1, 0, 0)) == 7


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
