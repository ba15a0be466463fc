"""Fixtures of the power-loss tier: a FaultFS mount that is always unmounted."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.powerloss.faultfs import FaultFS, _mounted, fuse_missing


def require_fuse() -> None:
    """Skip (with the reason printed) where FUSE cannot work; in CI, fail instead."""
    missing = fuse_missing()
    require(missing is None, f"power-loss tier needs FUSE: {missing}")


@pytest.fixture
def disk_root() -> Iterator[Path]:
    """A short directory (the control socket's path must stay under 108 bytes)."""
    root = Path(tempfile.mkdtemp(prefix="pqfs-", dir="/tmp"))
    yield root
    if "1" in (os.environ.get("PQ_FAULTFS_OPLOG"), os.environ.get("PQ_FAULTFS_SNAPSHOTS")):
        print(f"\nfaultfs: disk, op log and cut snapshots kept in {root}")
    elif not _mounted(root / "mnt"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def faultfs(disk_root: Path) -> Iterator[FaultFS]:
    """A mounted FaultFS; unmounted at teardown whatever the test left behind."""
    require_fuse()
    fs = FaultFS(disk_root, seed=1234)
    fs.mount()
    try:
        yield fs
    finally:
        fs.unmount()
