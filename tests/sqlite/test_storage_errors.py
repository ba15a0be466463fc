"""SQLite storage failures each give one clear error and lose nothing."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from pqcore import (
    DatabaseBusy,
    DatabaseCorrupt,
    DatabaseNotFound,
    DatabaseReadOnly,
    DatabaseUnavailable,
    DiskFull,
    EnqueueRequest,
    QueueSettings,
    open_queue,
)
from pqcore.exceptions import SchemaTooNew
from tests.namespaces import (
    python,
    read_only_bind,
    require_mount_namespaces,
    run_in_namespace,
    small_tmpfs,
)


def make_db(path: Path, jobs: int = 3) -> None:
    with open_queue(str(path)) as queue:
        queue.enqueue_many([f"job-{i}" for i in range(jobs)])


def pending(path: Path) -> int:
    with open_queue(str(path), create=False) as queue:
        assert queue.doctor() == []
        return queue.stats().counts["pending"]


@pytest.mark.parametrize("what", ["file", "directory"])
def test_read_only_database(tmp_path: Path, what: str) -> None:
    require_mount_namespaces()
    db = tmp_path / "queue.db"
    make_db(db)
    # A read-only file keeps a writable folder (SQLite can add -wal/-shm); a read-only
    # folder cannot even hold those.
    target = db if what == "file" else tmp_path
    result = run_in_namespace(
        [read_only_bind(str(target))],
        [python(), "-m", "tests.sqlite.storage_probe", "read-only", str(db)],
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["error"] == DatabaseReadOnly.__name__, report
    assert "read-only" in str(report["message"]) and "nothing was changed" in str(report["message"])
    if what == "file":
        assert report["pending_before"] == 3  # reading still works
    assert pending(db) == 3


def test_corrupt_file(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    db.write_bytes(os.urandom(8192))
    with pytest.raises(DatabaseCorrupt, match="not a queue database"):
        open_queue(str(db))
    with pytest.raises(DatabaseCorrupt):
        open_queue(str(db), create=False)


def test_text_file_is_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "notes.txt"
    db.write_text("these are my notes, not a queue\n" * 200)
    with pytest.raises(DatabaseCorrupt):
        open_queue(str(db))
    assert db.read_text().startswith("these are my notes")  # not overwritten


def test_damaged_pages_are_reported(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    make_db(db, jobs=2000)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = db.stat().st_size
    with open(db, "r+b") as handle:  # keep the header page, wreck the middle
        handle.seek(size // 2)
        handle.write(os.urandom(4096 * 4))
    try:
        queue = open_queue(str(db), create=False)
        problems = queue.doctor()
    except DatabaseCorrupt:
        return
    assert problems and any("integrity" in p for p in problems), problems


def test_missing_database_with_create_false(tmp_path: Path) -> None:
    db = tmp_path / "nowhere" / "queue.db"
    with pytest.raises(DatabaseNotFound, match=str(db)):
        open_queue(str(db), create=False)
    assert not db.parent.exists()  # nothing was created on the way


def test_uncreatable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(DatabaseUnavailable):
        open_queue(str(blocker / "sub" / "queue.db"))
    with pytest.raises(DatabaseUnavailable, match="directory"):
        open_queue(str(tmp_path))
    assert blocker.read_text() == "x"


def test_disk_full_via_page_limit_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    make_db(db)
    queue = open_queue(str(db))
    conn = queue.driver.connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 5}")
    batch = [EnqueueRequest(f"big-{i}-" + "y" * 4000) for i in range(50)]
    with pytest.raises(DiskFull, match="nothing was lost"):
        queue.enqueue_many(batch)
    assert queue.stats().total == 3
    assert queue.count_jobs() == 3
    assert queue.doctor() == []
    conn.execute(f"PRAGMA max_page_count = {pages + 10_000}")
    assert len(queue.enqueue_many(batch)) == 50  # space again: the same batch goes in
    queue.close()
    assert pending(db) == 53


def test_disk_full_on_a_small_filesystem(tmp_path: Path) -> None:
    require_mount_namespaces()
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    db = mount_point / "queue.db"
    result = run_in_namespace(
        [small_tmpfs(str(mount_point), "1m")],
        [python(), "-m", "tests.sqlite.storage_probe", "fill", str(db)],
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["error"] == "DiskFull", report
    assert report["committed"] > 0
    assert report["total"] == report["committed"]  # the failed batch left nothing behind
    assert report["doctor"] == []


def test_locked_database_past_the_retry_budget(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    make_db(db)
    queue = open_queue(
        str(db), settings=QueueSettings(db=str(db), busy_timeout_ms=100, busy_retries=0)
    )
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DatabaseBusy, match="nothing was changed"):
            queue.enqueue("blocked")
        with pytest.raises(DatabaseBusy):
            queue.claim("w1")
    finally:
        other.execute("ROLLBACK")
        other.close()
    stats = queue.stats()
    assert stats.total == stats.counts["pending"] == 3  # nothing was enqueued or claimed
    assert queue.enqueue("free again").id
    queue.close()


def test_lock_released_within_the_retry_budget(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    make_db(db)
    queue = open_queue(
        str(db), settings=QueueSettings(db=str(db), busy_timeout_ms=50, busy_retries=12)
    )
    other = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN EXCLUSIVE")
    locked_at = time.monotonic()
    release = threading.Timer(0.3, lambda: (other.execute("COMMIT"), other.close()))
    release.start()
    try:
        job = queue.enqueue("waited for the lock")
    finally:
        release.join()
    assert time.monotonic() - locked_at >= 0.3  # it really waited for the other writer
    assert queue.get(job.id).data == "waited for the lock"
    assert queue.doctor() == []
    queue.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    make_db(db)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 999")
    with pytest.raises(SchemaTooNew, match="999"):
        open_queue(str(db))
    with sqlite3.connect(db) as conn:  # nothing was migrated or changed
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 999
        assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 3
