"""Run a command inside a private mount namespace, after mounts made only there.

Tests run as root, and root ignores file modes, so ``chmod`` cannot make SQLite see a
read-only file. A read-only bind mount (or a tiny tmpfs) in a private namespace does:
the kernel itself refuses the writes, for root too, and nothing leaks to the host.
"""

from __future__ import annotations

import functools
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence

from tests.conftest import ROOT, require


@functools.cache
def mount_namespaces_work() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "mount", "-t", "tmpfs", "none", "/mnt"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def require_mount_namespaces() -> None:
    require(mount_namespaces_work(), "needs root and `unshare -m` to mount inside a namespace")


def run_in_namespace(
    mounts: Sequence[str], argv: Sequence[str], *, timeout: float = 60, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` after the shell commands ``mounts``, all in a throwaway mount namespace."""
    script = " && ".join([*mounts, 'exec "$@"'])
    return subprocess.run(  # type: ignore[call-overload,no-any-return]
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        **kwargs,
    )


def read_only_bind(path: str) -> str:
    quoted = shlex.quote(path)
    return f"mount --bind -o ro {quoted} {quoted}"


def small_tmpfs(path: str, size: str) -> str:
    return f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(path)}"


def python() -> str:
    return sys.executable
