"""The FaultFS layer itself: what a cut keeps and drops, torn cuts, faults, and SQLite WAL
with several processes on top of it."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.powerloss.conftest import require_fuse
from tests.powerloss.faultfs import BLOCK, FaultFS

pytestmark = pytest.mark.integration


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes, *, sync: bool) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def cut_and_remount(fs: FaultFS, *, torn: bool = False) -> dict[str, object]:
    report = fs.cut(torn=torn)
    fs.remount()
    return report


def test_unsynced_data_is_lost_and_synced_data_survives(faultfs: FaultFS) -> None:
    m = faultfs.mountpoint
    write_file(m / "kept", b"durable", sync=True)
    write_file(m / "partly", b"first", sync=True)
    fsync_dir(m)
    with open(m / "partly", "ab") as handle:
        handle.write(b" second, never synced")
    write_file(m / "kept", b"durable", sync=True)  # O_TRUNC then the same bytes, synced
    with open(m / "partly", "rb") as handle:  # the program sees its buffered write
        assert handle.read() == b"first second, never synced"
    assert os.stat(m / "partly").st_size == len(b"first second, never synced")

    report = cut_and_remount(faultfs)

    assert report["dirty_files"] == 1
    assert (m / "kept").read_bytes() == b"durable"
    assert (m / "partly").read_bytes() == b"first"


def test_unsynced_truncate_reverts(faultfs: FaultFS) -> None:
    m = faultfs.mountpoint
    write_file(m / "f", b"x" * (3 * BLOCK + 100), sync=True)
    fsync_dir(m)
    os.truncate(m / "f", 10)
    assert (m / "f").read_bytes() == b"x" * 10
    cut_and_remount(faultfs)
    assert (m / "f").read_bytes() == b"x" * (3 * BLOCK + 100)


def test_names_need_a_directory_fsync(faultfs: FaultFS) -> None:
    m = faultfs.mountpoint
    (m / "sub").mkdir()
    write_file(m / "named", b"a", sync=True)
    fsync_dir(m)
    write_file(m / "sub" / "early", b"e", sync=True)
    fsync_dir(m / "sub")  # sub/early is durable
    write_file(m / "sub" / "tmp", b"renamed", sync=True)
    fsync_dir(m / "sub")  # an ordered journal: everything before it is durable too
    write_file(m / "orphan", b"data synced, name not", sync=True)  # no directory fsync
    os.rename(m / "sub" / "tmp", m / "sub" / "final")  # rename without directory fsync
    os.unlink(m / "named")  # unlink without directory fsync
    assert sorted(os.listdir(m)) == ["orphan", "sub"]
    assert sorted(os.listdir(m / "sub")) == ["early", "final"]

    cut_and_remount(faultfs)

    assert sorted(os.listdir(m)) == ["named", "sub"]  # orphan gone, named back
    assert sorted(os.listdir(m / "sub")) == ["early", "tmp"]  # the rename reverted
    assert (m / "sub" / "tmp").read_bytes() == b"renamed"
    assert (m / "named").read_bytes() == b"a"


def test_a_rename_with_directory_fsync_survives(faultfs: FaultFS) -> None:
    m = faultfs.mountpoint
    write_file(m / ".tmp-job", b"job body\n", sync=True)
    os.rename(m / ".tmp-job", m / "job")
    fsync_dir(m)
    write_file(m / "job2", b"created and synced with its directory", sync=True)
    fsync_dir(m)
    cut_and_remount(faultfs)
    assert sorted(os.listdir(m)) == ["job", "job2"]
    assert (m / "job").read_bytes() == b"job body\n"
    assert [e.inode() for e in os.scandir(m)] == [os.stat(m / n).st_ino for n in ("job", "job2")]


def test_a_torn_cut_keeps_a_subset_of_unsynced_blocks(faultfs: FaultFS) -> None:
    m = faultfs.mountpoint
    blocks = 32
    kept_counts = []
    for trial in range(6):
        name = f"torn-{trial}"
        write_file(m / name, b"\0" * (blocks * BLOCK), sync=True)
        fsync_dir(m)
        with open(m / name, "r+b") as handle:
            for i in range(blocks):
                handle.seek(i * BLOCK)
                handle.write(f"block {i:03d} new".encode().ljust(BLOCK, b"#"))
        report = cut_and_remount(faultfs, torn=True)
        data = (m / name).read_bytes()
        assert len(data) == blocks * BLOCK
        kept = 0
        for i in range(blocks):
            block = data[i * BLOCK : (i + 1) * BLOCK]
            new = f"block {i:03d} new".encode().ljust(BLOCK, b"#")
            assert block in (new, b"\0" * BLOCK), f"block {i} is neither old nor new"
            kept += block == new
        assert kept == report["torn_blocks_written"]
        kept_counts.append(kept)
    assert any(0 < k < blocks for k in kept_counts), kept_counts  # a real subset, sometimes


def test_a_cut_disk_is_dead_until_remounted(faultfs: FaultFS) -> None:
    m = faultfs.mountpoint
    write_file(m / "f", b"before", sync=True)
    fsync_dir(m)
    fd = os.open(m / "f", os.O_RDWR)
    try:
        faultfs.cut()
        with pytest.raises(OSError) as write_error:
            os.pwrite(fd, b"late", 0)
            os.fsync(fd)
        assert write_error.value.errno == errno.EIO
    finally:
        os.close(fd)
    faultfs.remount()
    assert (m / "f").read_bytes() == b"before"
    assert not faultfs.status()["dead"]


def test_a_clean_unmount_keeps_everything(faultfs: FaultFS) -> None:
    m = faultfs.mountpoint
    write_file(m / "never-synced", b"kept by a clean unmount", sync=False)
    faultfs.remount()
    assert (m / "never-synced").read_bytes() == b"kept by a clean unmount"


def test_injected_faults_and_heal(faultfs: FaultFS) -> None:
    m = faultfs.mountpoint
    write_file(m / "f", b"0123456789", sync=True)
    fsync_dir(m)

    faultfs.fault("eio_write", match="f", count=1)
    with pytest.raises(OSError) as error, open(m / "f", "r+b", buffering=0) as handle:
        handle.write(b"X")
    assert error.value.errno == errno.EIO
    write_file(m / "other", b"not matched", sync=True)  # other files are unaffected

    faultfs.fault("enospc")
    with open(m / "f", "r+b", buffering=0) as handle:
        handle.write(b"A")  # overwriting allocated space works
        with pytest.raises(OSError) as error:
            handle.seek(0, os.SEEK_END)
            handle.write(b"more")  # growing the file needs space
    assert error.value.errno == errno.ENOSPC
    assert os.statvfs(m).f_bavail == 0
    faultfs.heal()

    faultfs.fault("erofs")
    for attempt in (
        lambda: write_file(m / "new", b"x", sync=False),
        lambda: os.close(os.open(m / "f", os.O_RDWR)),
        lambda: os.rename(m / "f", m / "g"),
    ):
        with pytest.raises(OSError) as error:
            attempt()
        assert error.value.errno == errno.EROFS
    assert (m / "f").read_bytes() == b"A123456789"  # reading still works
    faultfs.heal()

    # A failed fsync: the data stays visible, is never written, and the error is reported.
    faultfs.fault("eio_fsync", match="f", count=1)
    fd = os.open(m / "f", os.O_RDWR)
    try:
        os.pwrite(fd, b"LOST", 0)
        with pytest.raises(OSError) as error:
            os.fsync(fd)
        assert error.value.errno == errno.EIO
        os.fsync(fd)  # the fault is spent: this one succeeds, yet writes nothing of it
        assert os.pread(fd, 10, 0) == b"LOST456789"
    finally:
        os.close(fd)
    cut_and_remount(faultfs)
    assert (m / "f").read_bytes() == b"0123456789"  # the unsynced "A" went with the failure


def test_an_armed_cut_lands_inside_an_fsync(faultfs: FaultFS) -> None:
    m = faultfs.mountpoint
    write_file(m / "x-wal", b"", sync=True)
    fsync_dir(m)
    faultfs.arm_cut("*-wal", after=2)
    fd = os.open(m / "x-wal", os.O_RDWR)
    try:
        os.write(fd, b"commit 1")
        os.fsync(fd)  # the first fsync goes through
        os.write(fd, b" commit 2")
        with pytest.raises(OSError) as error:
            os.fsync(fd)
        assert error.value.errno == errno.EIO
    finally:
        os.close(fd)
    status = faultfs.status()
    assert status["dead"] and status["last_cut"]["during_fsync_of"] == "x-wal"
    faultfs.remount()
    assert (m / "x-wal").read_bytes() == b"commit 1"


def test_the_op_log_records_who_did_what_and_the_disk_each_cut_left(
    disk_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_fuse()
    monkeypatch.setenv("PQ_FAULTFS_OPLOG", "1")
    fs = FaultFS(disk_root / "l", seed=1)
    with fs.mounted() as m:
        write_file(m / "f", b"x" * (BLOCK + 1), sync=True)
        fsync_dir(m)
        write_file(m / "f", b"y", sync=False)
        fs.cut()
    entries = [json.loads(line) for line in (fs.root / "oplog.jsonl").read_text().splitlines()]
    ops = [(e["op"], e.get("name")) for e in entries if e["op"] != "release"]
    assert ops[:2] == [("mount", None), ("link", "f")]
    assert ("fsyncdir", "") in ops and ops[-1] == ("cut", None)
    synced = next(e for e in entries if e["op"] == "fsync")
    assert synced["blocks"] == [0, 1] and synced["pid"] == os.getpid()
    assert [e["length"] for e in entries if e["op"] == "truncate"] == [0]  # the 2nd O_TRUNC
    [snapshot] = fs.root.glob("cut-*")
    namespace = json.loads((snapshot / "namespace.json").read_text())
    assert (snapshot / "inodes" / str(namespace["entries"]["/f"])).read_bytes() == b"x" * (
        BLOCK + 1
    )


WRITER = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    for i in range(int(sys.argv[2])):
        conn.execute("BEGIN IMMEDIATE")
        (n,) = conn.execute("SELECT n FROM counter").fetchone()
        conn.execute("UPDATE counter SET n = ?", (n + 1,))
        conn.execute("INSERT INTO rows (who) VALUES (?)", (sys.argv[3],))
        conn.execute("COMMIT")
    print("done", flush=True)
    """
)

HOLDER = textwrap.dedent(
    """
    import sqlite3, sys
    conn = sqlite3.connect(sys.argv[1], isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    print("holding", flush=True)
    sys.stdin.readline()
    conn.execute("ROLLBACK")
    """
)


def test_sqlite_wal_with_two_processes(faultfs: FaultFS) -> None:
    db = faultfs.mountpoint / "two.db"
    conn = sqlite3.connect(db, isolation_level=None)
    assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    conn.execute("CREATE TABLE counter (n INTEGER)")
    conn.execute("INSERT INTO counter VALUES (0)")
    conn.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, who TEXT)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), "300", who], env=env)
        for who in ("a", "b")
    ]
    for writer in writers:
        assert writer.wait(120) == 0
    # Read-modify-write under BEGIN IMMEDIATE: a lock that did not exclude loses updates.
    assert conn.execute("SELECT n FROM counter").fetchone()[0] == 600
    assert conn.execute("SELECT count(*) FROM rows").fetchone()[0] == 600
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        other = sqlite3.connect(db, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(30)
    conn.close()

    cut_and_remount(faultfs)  # every commit above returned at FULL: all survive
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT n FROM counter").fetchone()[0] == 600
    conn.close()
