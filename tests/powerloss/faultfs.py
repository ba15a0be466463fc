"""A FUSE filesystem that behaves like a disk behind a volatile cache, for power-loss tests.

The disk is a backing directory: ``inodes/<n>`` hold each file's durable bytes and
``namespace.json`` the durable directory tree. Everything not yet made durable lives in
this process's memory only:

* data: a write changes 4 KiB blocks kept per file in memory; ``fsync``/``fdatasync``
  of that file writes its blocks (and its size, truncations included) to the disk.
  ``close`` is not a durability point.
* names: create, mkdir, unlink, rmdir and rename change the live tree at once and are
  appended to a journal; ``fsync`` of a directory makes the journal durable up to the
  last change in that directory (an ordered metadata journal, as ext4 and XFS keep).
  A file whose data was synced but whose name was not vanishes at a cut; a rename
  without a directory fsync reverts.

A *cut* drops all of it (a *torn* cut first writes a random subset of the unsynced
blocks, in random order, and a random prefix of the journal) and marks the disk dead:
every later write, fsync or read fails with EIO, so the kernel's late write-back of
mmapped ``-shm`` pages during unmount cannot bring dropped data back. The caller then
kills every process using the mount, unmounts and mounts again: the new daemon sees
only the disk.

Faults for the disk-error tests: EIO on write, EIO on fsync (the failed blocks stay
readable but are never written, as Linux marks pages clean after a write-back error),
ENOSPC on writes that need new space, and a read-only state (EROFS on every change).
Faults leave `-shm` alone (see `Disk._check`); a dead disk does not.

Made for SQLite in WAL mode (see /work/shared/notes/power-loss.md): no ``direct_io``
(the ``-shm`` mmap needs the page cache), no ``lock``/``flock`` operations (the kernel
enforces POSIX and BSD locks between processes), ``getattr`` reports the buffered size,
``readdir`` returns ``st_ino`` (``use_ino``).

Diagnostics: with ``PQ_FAULTFS_OPLOG=1`` the daemon appends every operation (link,
unlink, rename, write, truncate, fsync with the blocks it wrote or dropped, fsyncdir,
open, release, cut, torn blocks written) with the caller's pid as a JSON line to
``oplog.jsonl`` beside the backing directory, copies the disk as each cut left it to
``cut-<time>/`` (``PQ_FAULTFS_SNAPSHOTS=1``: only that, at full speed), and the test
fixture keeps the whole directory.

Run ``python -m tests.powerloss.faultfs BACKING MOUNTPOINT CONTROL_SOCKET``; the class
``FaultFS`` below starts, drives and stops it. Control: one JSON line per connection on
a unix socket (``cut``, ``arm_cut``, ``fault``, ``heal``, ``status``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fnmatch
import json
import os
import random
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BLOCK = 4096
NAMESPACE = "namespace.json"
ROOT_INO = 1
FAULT_KINDS = ("eio_write", "eio_fsync", "enospc", "erofs")


# ====================================================================== the daemon


@dataclasses.dataclass
class Node:
    ino: int
    mode: int
    backing: Path | None = None  # regular files only
    durable_size: int = 0
    size: int = 0  # what programs see: buffered writes and truncations included
    floor: int = 0  # durable bytes at or past this offset were truncated away (unsynced)
    blocks: dict[int, bytearray] = dataclasses.field(default_factory=dict)  # unsynced
    ghost: dict[int, bytearray] = dataclasses.field(default_factory=dict)  # failed fsync
    mtime_ns: int = dataclasses.field(default_factory=time.time_ns)
    fd: int | None = None  # the backing file, opened on first use
    name: str = ""  # its last name, for faults that match file names

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


@dataclasses.dataclass
class Fault:
    kind: str
    match: str = "*"
    count: int = -1  # failures left; -1: until healed
    hits: int = 0


def _parent(path: str) -> str:
    return os.path.dirname(path) or "/"


def _apply(ns: dict[str, int], op: tuple[Any, ...]) -> None:
    """Apply one journal entry to a namespace (path -> inode number)."""
    kind = op[0]
    if kind == "link":
        ns[op[1]] = op[2]
    elif kind == "unlink":
        ns.pop(op[1], None)
    elif kind == "rename":
        old, new = op[1], op[2]
        if old not in ns:
            return
        for key in [k for k in ns if k == new or k.startswith(new + "/")]:
            del ns[key]
        for key in [k for k in ns if k == old or k.startswith(old + "/")]:
            ns[new + key[len(old) :]] = ns.pop(key)


class Disk:
    """The filesystem's state and operations; every method runs under one lock."""

    def __init__(self, backing: Path, seed: int | None = None) -> None:
        self.backing = backing
        self.inodes_dir = backing / "inodes"
        self.inodes_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.rng = random.Random(seed)
        self.dead = False
        self.faults: list[Fault] = []
        self.armed: dict[str, Any] | None = None
        self.last_cut: dict[str, Any] | None = None
        self.counters: dict[str, int] = {"fsync": 0, "fsyncdir": 0, "write": 0, "errors": 0}
        self.opens: dict[str, int] = {}  # file name -> open() calls (a new connection opens)
        self.handles: dict[int, int] = {}  # fh -> inode number
        self.next_fh = 1
        # PQ_FAULTFS_OPLOG=1: every operation as one JSON line in <backing>/../oplog.jsonl
        # (beside the disk, not on it), with the calling pid; for diagnosing a bad cut.
        self.pid = 0
        self.oplog = None
        if os.environ.get("PQ_FAULTFS_OPLOG") == "1":
            self.oplog = open(backing.parent / "oplog.jsonl", "a", buffering=1)  # noqa: SIM115
        self.snapshots = os.environ.get("PQ_FAULTFS_SNAPSHOTS") == "1"  # without the op log
        self._load()
        self.log("mount", next_ino=self.next_ino, durable=self.durable)

    def log(self, op: str, node: Node | None = None, **fields: Any) -> None:
        if self.oplog is None:
            return
        entry: dict[str, Any] = {"t": round(time.time(), 6), "op": op, "pid": self.pid}
        if node is not None:
            entry.update(ino=node.ino, name=node.name)
        entry.update(fields)
        self.oplog.write(json.dumps(entry, default=str) + "\n")

    # ------------------------------------------------------------ the disk

    def _load(self) -> None:
        file = self.backing / NAMESPACE
        data = json.loads(file.read_text()) if file.exists() else {}
        self.durable: dict[str, int] = dict(data.get("entries", {"/": ROOT_INO}))
        self.durable_modes: dict[int, int] = {
            int(k): v for k, v in data.get("modes", {str(ROOT_INO): stat.S_IFDIR | 0o755}).items()
        }
        self.next_ino = int(data.get("next_ino", ROOT_INO + 1))
        self.live = dict(self.durable)
        self.journal: list[tuple[Any, ...]] = []
        self.nodes: dict[int, Node] = {}
        referenced = set(self.durable.values())
        for backing in self.inodes_dir.iterdir():  # data of files that never got a name
            if not backing.name.isdigit() or int(backing.name) not in referenced:
                backing.unlink()
        names = {ino: os.path.basename(path) for path, ino in self.durable.items()}
        for ino in referenced:
            mode = self.durable_modes.get(ino, stat.S_IFREG | 0o644)
            node = Node(ino, mode, name=names[ino])
            if stat.S_ISREG(mode):
                node.backing = self.inodes_dir / str(ino)
                if node.backing.exists():
                    st = node.backing.stat()
                    node.durable_size = node.size = node.floor = st.st_size
                    node.mtime_ns = st.st_mtime_ns
            self.nodes[ino] = node
            self.next_ino = max(self.next_ino, ino + 1)

    def _save_namespace(self) -> None:
        live_modes = {ino: n.mode for ino, n in self.nodes.items()}
        modes = {
            str(ino): live_modes.get(ino, self.durable_modes.get(ino, 0))
            for ino in set(self.durable.values())
        }
        self.durable_modes = {int(k): v for k, v in modes.items()}
        data = {"entries": self.durable, "modes": modes, "next_ino": self.next_ino}
        temp = self.backing / (NAMESPACE + ".tmp")
        temp.write_text(json.dumps(data))
        os.replace(temp, self.backing / NAMESPACE)

    def _backing_fd(self, node: Node) -> int:
        if node.fd is None:
            assert node.backing is not None
            node.fd = os.open(node.backing, os.O_RDWR | os.O_CREAT, 0o600)
        return node.fd

    # ------------------------------------------------------------ faults

    def _check(self, op: str, node: Node | None, *, grows: bool = False) -> None:
        """Raise the error a dead disk or an injected fault gives this operation."""
        if self.dead:
            self.counters["errors"] += 1
            raise OSError(errno.EIO, "disk is dead (power cut)")
        name = node.name if node is not None else ""
        if name.endswith("-shm"):
            # SQLite's -shm is shared memory it never syncs. FUSE drops a file's page
            # cache at every open, so a failed write-back of its mmapped pages would make
            # every process re-read a stale copy from us, which no real filesystem does.
            return
        for fault in self.faults:
            if fault.count == 0 or not fnmatch.fnmatch(name, fault.match):
                continue
            error = None
            if fault.kind == "erofs" and op in ("write", "fsync", "create", "namespace", "open_w"):
                error = errno.EROFS
            elif (fault.kind, op) in (("eio_write", "write"), ("eio_fsync", "fsync")):
                error = errno.EIO
            elif fault.kind == "enospc" and (grows or op == "create"):
                error = errno.ENOSPC
            if error is not None:
                fault.hits += 1
                if fault.count > 0:
                    fault.count -= 1
                self.counters["errors"] += 1
                raise OSError(error, os.strerror(error))

    # ------------------------------------------------------------ lookups

    def node_at(self, path: str) -> Node:
        ino = self.live.get(path)
        if ino is None:
            raise OSError(errno.ENOENT, path)
        return self.nodes[ino]

    def node_for(self, path: str | None, fh: int | None) -> Node:
        if fh is not None and fh in self.handles:
            return self.nodes[self.handles[fh]]
        if path is None:
            raise OSError(errno.EBADF, "no path and no handle")
        return self.node_at(path)

    def attrs(self, node: Node) -> dict[str, Any]:
        size = 4096 if node.is_dir else node.size if node.backing else 0
        return {
            "st_ino": node.ino,
            "st_mode": node.mode,
            "st_nlink": 2 if node.is_dir else 1,
            "st_size": size,
            "st_blocks": (size + 511) // 512,
            "st_blksize": BLOCK,
            "st_uid": os.getuid(),
            "st_gid": os.getgid(),
            "st_atime": node.mtime_ns,
            "st_mtime": node.mtime_ns,
            "st_ctime": node.mtime_ns,
        }

    def children(self, path: str) -> list[tuple[str, Node]]:
        prefix = path.rstrip("/") + "/"
        return [
            (p[len(prefix) :], self.nodes[ino])
            for p, ino in self.live.items()
            if p != "/" and p.startswith(prefix) and "/" not in p[len(prefix) :]
        ]

    # ------------------------------------------------------------ namespace changes

    def _journal(self, op: tuple[Any, ...], dirs: set[int]) -> None:
        _apply(self.live, op)
        self.journal.append((*op, frozenset(dirs)))
        now = time.time_ns()
        for ino in dirs:  # a directory's mtime tells listers (the doorbell) to look again
            self.nodes[ino].mtime_ns = now

    def new_node(self, path: str, mode: int) -> Node:
        parent = self.node_at(_parent(path))
        if not parent.is_dir:
            raise OSError(errno.ENOTDIR, path)
        if path in self.live:
            raise OSError(errno.EEXIST, path)
        self._check("create", None)
        node = Node(self.next_ino, mode, name=os.path.basename(path))
        self.next_ino += 1
        if stat.S_ISREG(mode):
            node.backing = self.inodes_dir / str(node.ino)
        self.nodes[node.ino] = node
        self._journal(("link", path, node.ino), {parent.ino})
        self.log("link", node, path=path)
        return node

    def remove(self, path: str, *, directory: bool) -> None:
        node = self.node_at(path)
        if directory != node.is_dir:
            raise OSError(errno.ENOTDIR if directory else errno.EISDIR, path)
        if directory and self.children(path):
            raise OSError(errno.ENOTEMPTY, path)
        self._check("namespace", None)
        self._journal(("unlink", path), {self.live[_parent(path)]})
        self.log("unlink", node, path=path)

    def rename(self, old: str, new: str) -> None:
        node = self.node_at(old)
        target = self.live.get(new)
        if target is not None:
            if self.nodes[target].is_dir != node.is_dir:
                raise OSError(errno.EISDIR if self.nodes[target].is_dir else errno.ENOTDIR, new)
            if self.nodes[target].is_dir and self.children(new):
                raise OSError(errno.ENOTEMPTY, new)
        new_parent = self.node_at(_parent(new))
        self._check("namespace", None)
        self._journal(("rename", old, new), {self.live[_parent(old)], new_parent.ino})
        node.name = os.path.basename(new)
        self.log("rename", node, old=old, new=new, replaced=target)

    def fsyncdir(self, node: Node) -> None:
        self._check("fsync", None)
        self.counters["fsyncdir"] += 1
        last = max((i for i, op in enumerate(self.journal) if node.ino in op[-1]), default=-1)
        self.log("fsyncdir", node, applied=last + 1)
        if last < 0:
            return
        for op in self.journal[: last + 1]:
            _apply(self.durable, op[:-1])
        del self.journal[: last + 1]
        self._save_namespace()

    # ------------------------------------------------------------ data

    def _base(self, node: Node, index: int) -> bytearray:
        """A block as the program sees it: unsynced, failed, or on the disk."""
        if index in node.blocks:
            return node.blocks[index]
        if index in node.ghost:
            return node.ghost[index]
        start = index * BLOCK
        limit = min(node.floor, node.durable_size)
        data = b""
        if start < limit:
            data = os.pread(self._backing_fd(node), min(BLOCK, limit - start), start)
        return bytearray(data.ljust(BLOCK, b"\0"))

    def read(self, node: Node, size: int, offset: int) -> bytes:
        self._check("read", node)
        end = min(offset + size, node.size)
        if offset >= end:
            return b""
        out = bytearray()
        for index in range(offset // BLOCK, (end - 1) // BLOCK + 1):
            out += self._base(node, index)
        skip = offset - (offset // BLOCK) * BLOCK
        return bytes(out[skip : skip + end - offset])

    def write(self, node: Node, data: bytes, offset: int) -> int:
        self._check("write", node, grows=offset + len(data) > node.size)
        self.counters["write"] += 1
        self.log("write", node, off=offset, len=len(data))
        position = 0
        while position < len(data):
            at = offset + position
            index, within = divmod(at, BLOCK)
            take = min(BLOCK - within, len(data) - position)
            block = node.blocks.get(index)
            if block is None:
                block = bytearray(self._base(node, index))
                node.ghost.pop(index, None)
                node.blocks[index] = block
            block[within : within + take] = data[position : position + take]
            position += take
        node.size = max(node.size, offset + len(data))
        node.mtime_ns = time.time_ns()
        return len(data)

    def truncate(self, node: Node, length: int) -> None:
        self._check("write", node, grows=length > node.size)
        self.log("truncate", node, length=length, size=node.size)
        if length < node.size:
            for store in (node.blocks, node.ghost):
                for index in [i for i in store if i * BLOCK >= length]:
                    del store[index]
            index, within = divmod(length, BLOCK)
            if within:
                block = node.blocks.get(index)
                if block is None:
                    block = bytearray(self._base(node, index))
                    node.ghost.pop(index, None)
                    node.blocks[index] = block
                block[within:] = bytes(BLOCK - within)
            node.floor = min(node.floor, length)
        node.size = length
        node.mtime_ns = time.time_ns()

    def fsync(self, node: Node) -> None:
        if self.armed is not None and fnmatch.fnmatch(node.name, self.armed["match"]):
            self.armed["left"] -= 1
            if self.armed["left"] <= 0:
                armed, self.armed = self.armed, None
                self.cut(torn=armed["torn"], during=node.name)
        self.counters["fsync"] += 1
        try:
            self._check("fsync", node)
        except OSError as error:
            self.log("fsync", node, error=error.errno, dropped=sorted(node.blocks))
            if error.errno == errno.EIO:
                self.fail_fsync(node)
            raise
        self.log("fsync", node, blocks=sorted(node.blocks), size=node.size)
        self._flush(node)

    def _flush(self, node: Node) -> None:
        if node.is_dir or node.backing is None:
            return
        fd = self._backing_fd(node)
        if node.floor < node.durable_size:
            os.ftruncate(fd, node.floor)
        for index in sorted(node.blocks):
            start = index * BLOCK
            if start < node.size:
                os.pwrite(fd, bytes(node.blocks[index][: node.size - start]), start)
        os.ftruncate(fd, node.size)
        node.blocks.clear()
        node.durable_size = node.floor = node.size

    def fail_fsync(self, node: Node) -> None:
        """After a failed fsync the data stays visible but is never written."""
        node.ghost.update(node.blocks)
        node.blocks.clear()

    # ------------------------------------------------------------ the cut

    def cut(self, *, torn: bool = False, during: str | None = None) -> dict[str, Any]:
        if self.dead:
            return self.last_cut or {}
        dirty = {ino: n for ino, n in self.nodes.items() if n.blocks or n.floor < n.durable_size}
        report: dict[str, Any] = {
            "torn": torn,
            "during_fsync_of": during,
            "dirty_files": len(dirty),
            "dirty_blocks": sum(len(n.blocks) for n in dirty.values()),
            "wal_dirty_blocks": sum(
                len(n.blocks) for n in dirty.values() if n.name.endswith("-wal")
            ),
            "journal_ops": len(self.journal),
            "torn_blocks_written": 0,
            "torn_ops_applied": 0,
        }
        if torn:
            writes = [(n, i) for n in dirty.values() for i in n.blocks]
            self.rng.shuffle(writes)
            chosen = writes[: self.rng.randint(0, len(writes))]
            for node, index in chosen:
                start = index * BLOCK
                if node.backing is not None and start < node.size:
                    fd = self._backing_fd(node)
                    os.pwrite(fd, bytes(node.blocks[index][: node.size - start]), start)
            report["torn_blocks_written"] = len(chosen)
            self.log("torn", written=sorted((n.ino, i) for n, i in chosen))
            keep = self.rng.randint(0, len(self.journal))
            for op in self.journal[:keep]:
                _apply(self.durable, op[:-1])
            report["torn_ops_applied"] = keep
            if keep:
                self._save_namespace()
        for node in self.nodes.values():
            node.blocks.clear()
            node.ghost.clear()
        self.journal.clear()
        self.dead = True
        self.last_cut = report
        self.log("cut", **report)
        if self.oplog is not None or self.snapshots:  # the disk as the cut left it
            shutil.copytree(self.backing, self.backing.parent / f"cut-{time.time():.3f}")
        return report

    def sync_all(self) -> None:
        """A clean unmount writes everything, as umount(8) does; a dead disk writes nothing."""
        if self.dead:
            return
        for node in self.nodes.values():
            self._flush(node)
        for op in self.journal:
            _apply(self.durable, op[:-1])
        self.journal.clear()
        self._save_namespace()

    def status(self) -> dict[str, Any]:
        return {
            "dead": self.dead,
            "last_cut": self.last_cut,
            "armed": self.armed,
            "dirty_blocks": sum(len(n.blocks) for n in self.nodes.values()),
            "unsynced": {  # file -> [unsynced blocks, blocks lost to a failed fsync]
                f"{n.name}#{n.ino}": [len(n.blocks), len(n.ghost)]
                for n in self.nodes.values()
                if n.blocks or n.ghost
            },
            "journal_ops": len(self.journal),
            "faults": [dataclasses.asdict(f) for f in self.faults],
            "counters": dict(self.counters),
            "opens": dict(self.opens),
        }

    def control(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "cut":
            return self.cut(torn=bool(request.get("torn")))
        if op == "arm_cut":
            self.armed = {
                "match": request.get("match", "*-wal"),
                "left": int(request.get("after", 1)),
                "torn": bool(request.get("torn")),
            }
            return self.status()
        if op == "fault":
            kind = request["kind"]
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown fault {kind!r}; one of {FAULT_KINDS}")
            self.faults.append(
                Fault(kind, request.get("match", "*"), int(request.get("count", -1)))
            )
            return self.status()
        if op == "heal":
            self.faults.clear()
            return self.status()
        if op == "status":
            return self.status()
        raise ValueError(f"unknown control request {request!r}")


def serve(backing: Path, mountpoint: Path, control: Path, seed: int | None) -> None:
    import mfusepy

    disk = Disk(backing, seed)
    logging_ops = disk.oplog is not None

    def caller() -> None:
        if logging_ops:
            disk.pid = mfusepy.fuse_get_context()[2]

    class Ops(mfusepy.Operations):  # type: ignore[misc]
        use_ns = True
        flag_nullpath_ok = True
        flag_nopath = True

        def getattr(self, path: str | None, fh: int | None = None) -> dict[str, Any]:
            with disk.lock:
                caller()
                return disk.attrs(disk.node_for(path, fh))

        def readdir(self, path: str | None, fh: int) -> list[Any]:
            with disk.lock:
                caller()
                here = disk.node_for(path, fh)
                if path is None:  # nullpath_ok: find the directory's name from its inode
                    path = next(p for p, ino in disk.live.items() if ino == here.ino)
                parent = disk.node_at(_parent(path))
                entries = [(".", here), ("..", parent), *disk.children(path)]
                return [(n, {"st_ino": x.ino, "st_mode": x.mode}, 0) for n, x in entries]

        def opendir(self, path: str) -> int:
            with disk.lock:
                caller()
                return self._handle(disk.node_at(path))

        def releasedir(self, path: str | None, fh: int) -> int:
            with disk.lock:
                caller()
                disk.handles.pop(fh, None)
            return 0

        def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
            with disk.lock:
                caller()
                disk.fsyncdir(disk.node_for(path, fh))
            return 0

        def _handle(self, node: Node) -> int:
            disk.opens[node.name] = disk.opens.get(node.name, 0) + 1
            fh = disk.next_fh
            disk.next_fh += 1
            disk.handles[fh] = node.ino
            disk.log("open", node, fh=fh)
            return fh

        def create(self, path: str, mode: int, flags: int = 0) -> int:
            with disk.lock:
                caller()
                node = disk.new_node(path, stat.S_IFREG | (mode & 0o7777))
                return self._handle(node)

        def open(self, path: str, flags: int) -> int:
            with disk.lock:
                caller()
                node = disk.node_at(path)
                if flags & (os.O_WRONLY | os.O_RDWR):
                    disk._check("open_w", node)
                if flags & os.O_TRUNC:
                    disk.truncate(node, 0)
                return self._handle(node)

        def release(self, path: str | None, fh: int) -> int:
            with disk.lock:
                caller()
                ino = disk.handles.pop(fh, None)
                if ino is not None and ino in disk.nodes:
                    disk.log("release", disk.nodes[ino], fh=fh)
            return 0

        def flush(self, path: str | None, fh: int) -> int:
            return 0

        def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
            with disk.lock:
                caller()
                return disk.read(disk.node_for(path, fh), size, offset)

        def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
            with disk.lock:
                caller()
                return disk.write(disk.node_for(path, fh), data, offset)

        def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
            with disk.lock:
                caller()
                disk.truncate(disk.node_for(path, fh), length)
            return 0

        def fsync(self, path: str | None, datasync: int, fh: int) -> int:
            with disk.lock:
                caller()
                node = disk.node_for(path, fh)
                disk.fsync(node)
            return 0

        def mknod(self, path: str, mode: int, dev: int) -> int:
            """Unix sockets and FIFOs (the doorbell binds its sockets beside the database)."""
            if not (stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode)):
                raise OSError(errno.EPERM, path)
            with disk.lock:
                caller()
                disk.new_node(path, mode)
            return 0

        def mkdir(self, path: str, mode: int) -> int:
            with disk.lock:
                caller()
                disk.new_node(path, stat.S_IFDIR | (mode & 0o7777))
            return 0

        def unlink(self, path: str) -> int:
            with disk.lock:
                caller()
                disk.remove(path, directory=False)
            return 0

        def rmdir(self, path: str) -> int:
            with disk.lock:
                caller()
                disk.remove(path, directory=True)
            return 0

        def rename(self, old: str, new: str) -> int:
            with disk.lock:
                caller()
                disk.rename(old, new)
            return 0

        def chmod(self, path: str | None, mode: int) -> int:
            if path is None:
                return 0
            with disk.lock:
                caller()
                node = disk.node_at(path)
                node.mode = stat.S_IFMT(node.mode) | (mode & 0o7777)
            return 0

        def chown(self, path: str | None, uid: int, gid: int) -> int:
            return 0

        def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> int:
            if path is None:
                return 0
            with disk.lock:
                caller()
                node = disk.node_at(path)
                node.mtime_ns = times[1] if times else time.time_ns()
            return 0

        def access(self, path: str, amode: int) -> int:
            """A read-only filesystem answers access(W_OK) with EROFS, as the kernel does."""
            with disk.lock:
                caller()
                disk.node_at(path)
                if amode & os.W_OK and any(f.kind == "erofs" for f in disk.faults):
                    raise OSError(errno.EROFS, path)
            return 0

        def destroy(self, path: str) -> None:
            with disk.lock:
                caller()
                disk.sync_all()

        def statfs(self, path: str) -> dict[str, int]:
            st = os.statvfs(disk.backing)
            free = 0 if any(f.kind == "enospc" for f in disk.faults) else st.f_bavail
            return {
                "f_bsize": BLOCK,
                "f_frsize": st.f_frsize,
                "f_blocks": st.f_blocks,
                "f_bfree": free,
                "f_bavail": free,
                "f_files": st.f_files,
                "f_ffree": st.f_ffree,
                "f_namemax": 255,
            }

    class Fuse(mfusepy.FUSE):  # type: ignore[misc]
        def truncate_fuse_3(self, path: bytes | None, length: int, fip: Any) -> int:
            """mfusepy drops the handle of ftruncate; an unlinked file needs it."""
            fh = fip.contents.fh if fip else None
            decoded = None if path is None else path.decode(self.encoding, self.errors)
            return int(self.operations.truncate(decoded, length, fh))

    def control_loop(server: socket.socket) -> None:
        while True:
            conn, _ = server.accept()
            with conn, conn.makefile("rwb") as stream:
                try:
                    request = json.loads(stream.readline())
                    with disk.lock:
                        disk.pid = 0
                        reply = {"ok": True, **disk.control(request)}
                except Exception as error:
                    reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
                stream.write(json.dumps(reply).encode() + b"\n")
                stream.flush()

    with contextlib.suppress(FileNotFoundError):
        control.unlink()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(control))
    server.listen(8)
    threading.Thread(target=control_loop, args=(server,), daemon=True).start()
    Fuse(
        Ops(),
        str(mountpoint),
        foreground=True,
        use_ino=True,
        hard_remove=True,
        fsname="pqfaultfs",
        subtype="pqfaultfs",
    )


# ====================================================================== the client


def fuse_missing() -> str | None:
    """Why a FUSE mount cannot be made here, or None when it can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (FUSE kernel module or device not available)"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is missing (Debian package fuse3; deploy/scripts/ensure-system.sh)"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as error:
        return f"mfusepy cannot load libfuse3 ({error}); install libfuse3-dev and mfusepy"
    return None


def _mounted(path: Path) -> bool:
    target = str(path)
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == target for line in mounts if len(line.split()) > 1)


class FaultFS:
    """One simulated disk: its backing directory, mount point and daemon process.

    ``root`` should be short: the control socket lives there (unix socket paths are
    limited to 107 bytes)."""

    def __init__(self, root: Path, *, seed: int | None = None) -> None:
        self.root = root
        self.backing = root / "disk"
        self.mountpoint = root / "mnt"
        self.control_path = root / "control.sock"
        self.log_path = root / "faultfs.log"
        self.seed = seed
        self.proc: subprocess.Popen[bytes] | None = None
        self.mounts = 0
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ mount

    def mount(self, timeout: float = 30.0) -> Path:
        if self.proc is not None:
            raise RuntimeError("already mounted")
        seed = None if self.seed is None else self.seed + self.mounts
        root = Path(__file__).resolve().parents[2]
        argv = [sys.executable, "-m", "tests.powerloss.faultfs", str(self.backing)]
        argv += [str(self.mountpoint), str(self.control_path)]
        if seed is not None:
            argv += ["--seed", str(seed)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=root,
                env={**os.environ, "PYTHONPATH": str(root)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a test's Ctrl-C must not kill the disk first
            )
        deadline = time.monotonic() + timeout
        while not (_mounted(self.mountpoint) and self._control_ready()):
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"faultfs daemon exited at mount: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.unmount()
                raise RuntimeError(f"faultfs did not mount in {timeout}s: {self.log_tail()}")
            time.sleep(0.01)
        self.mounts += 1
        return self.mountpoint

    def _control_ready(self) -> bool:
        try:
            self.request(op="status")
            return True
        except OSError:
            return False

    def unmount(self) -> None:
        """Unmount whatever state the daemon is in; never raises for a missing mount."""
        if _mounted(self.mountpoint):
            done = subprocess.run(
                ["fusermount3", "-u", str(self.mountpoint)], capture_output=True, timeout=30
            )
            if done.returncode != 0 and _mounted(self.mountpoint):
                subprocess.run(["fusermount3", "-uz", str(self.mountpoint)], timeout=30)
            if _mounted(self.mountpoint):
                subprocess.run(["umount", "-l", str(self.mountpoint)], timeout=30)
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    def remount(self) -> Path:
        self.unmount()
        return self.mount()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    # ------------------------------------------------------------ control

    def request(self, **request: Any) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(30)
            conn.connect(str(self.control_path))
            conn.sendall(json.dumps(request).encode() + b"\n")
            with conn.makefile("rb") as stream:
                reply: dict[str, Any] = json.loads(stream.readline())
        if not reply.pop("ok"):
            raise RuntimeError(f"faultfs refused {request}: {reply.get('error')}")
        return reply

    def cut(self, *, torn: bool = False) -> dict[str, Any]:
        """Power cut now: unsynced data and names are gone, the disk is dead."""
        return self.request(op="cut", torn=torn)

    def arm_cut(self, match: str = "*-wal", *, after: int = 1, torn: bool = False) -> None:
        """Cut inside the ``after``-th next fsync of a file whose name matches ``match``
        (that fsync fails): the cut lands in the middle of a commit."""
        self.request(op="arm_cut", match=match, after=after, torn=torn)

    def fault(self, kind: str, *, match: str = "*", count: int = -1) -> None:
        self.request(op="fault", kind=kind, match=match, count=count)

    def heal(self) -> None:
        self.request(op="heal")

    def status(self) -> dict[str, Any]:
        return self.request(op="status")

    @contextlib.contextmanager
    def mounted(self) -> Iterator[Path]:
        self.mount()
        try:
            yield self.mountpoint
        finally:
            self.unmount()


def main(argv: list[str] | None = None) -> int:
    import argparse
    import logging

    parser = argparse.ArgumentParser(prog="python -m tests.powerloss.faultfs")
    parser.add_argument("backing", type=Path)
    parser.add_argument("mountpoint", type=Path)
    parser.add_argument("control", type=Path)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="faultfs %(levelname)s %(message)s")
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    serve(args.backing, args.mountpoint, args.control, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
