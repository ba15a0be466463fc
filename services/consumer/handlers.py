"""Job handlers, chosen by the job's kind, and the default one: append a completion line.

Kinds. A payload ``<kind>:<argument>`` whose ``<kind>`` is registered runs that
handler with ``<argument>``; any other payload is a job file path for the ``file``
handler (so the producer's plain paths need no prefix). Register your own with
``register_handler("resize", fn)`` in a module named by ``--handler-modules`` /
``PQ_HANDLER_MODULES`` (comma-separated, imported when the consumer starts).

A handler is ``fn(ctx: HandlerContext) -> None``. Returning means success. Raising
``TransientError`` (or an ``OSError`` such as ``EAGAIN``) is retried in-process up to
3 times with a short backoff; ``PermanentError`` fails the job for good (dead-letter
queue); anything else fails it retryably (the manager retries it later with
exponential backoff). Long work should wait with ``ctx.sleep`` and call
``ctx.check_lease()`` before side effects, so shutdown, lease loss and an operator's
cancel interrupt it (``CancelledDuringWork``, a ``LeaseLostDuringWork``: let it
propagate; the consumer then writes nothing more for the job).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pqcore import Job
from services.common import jobfiles


class TransientError(Exception):
    """A failure worth retrying at once (a busy resource, a timeout)."""


class PermanentError(Exception):
    """A failure no retry can fix (bad input): the job goes to the dead-letter queue."""


class UnsafePath(PermanentError):
    """The job's path points outside the jobs directory."""


class JobAbandoned(Exception):
    """Shutdown came and the work cannot finish within the grace period."""


class LeaseLostDuringWork(Exception):
    """The lease was taken away while the handler ran: stop, write nothing more."""


class CancelledDuringWork(LeaseLostDuringWork):
    """An operator cancelled the job while the handler ran: stop, write nothing more."""


TRANSIENT_ERRNOS = frozenset(
    {errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.EBUSY, errno.ETIMEDOUT, errno.ENOLCK}
)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, TransientError):
        return True
    return isinstance(error, OSError) and error.errno in TRANSIENT_ERRNOS


@dataclasses.dataclass
class HandlerContext:
    """What a handler gets: the job, its argument, and cooperative waiting."""

    job: Job
    argument: str
    jobs_dir: Path
    consumer_id: str
    work_seconds: float
    stop_requested: Callable[[], bool]
    grace_left: Callable[[], float]
    lease_lost: threading.Event
    # Set (before ``lease_lost``) when the lease went because an operator cancelled the job.
    cancelled: threading.Event = dataclasses.field(default_factory=threading.Event)
    # Takes an open file descriptor whose writes must be on disk before the job is
    # reported done, and closes it later: the consumer fsyncs a batch of them together
    # just before their outcomes are written. None: fsync it yourself, now.
    sync_later: Callable[[int], None] | None = None

    def check_lease(self) -> None:
        """Raise ``CancelledDuringWork`` once an operator cancelled the job, or
        ``LeaseLostDuringWork`` once the lease was lost otherwise (both seen by the
        consumer's next heartbeat): call it before every side effect."""
        if self.lease_lost.is_set():
            if self.cancelled.is_set():
                raise CancelledDuringWork(f"job {self.job.id} was cancelled by an operator")
            raise LeaseLostDuringWork(f"lease on job {self.job.id} was lost")

    def sleep(self, seconds: float) -> None:
        """Wait as work does. Raises ``JobAbandoned`` once a stop is requested and the
        rest of the wait would outlast the grace period, ``CancelledDuringWork`` or
        ``LeaseLostDuringWork`` (see ``check_lease``)."""
        deadline = time.monotonic() + seconds
        while True:
            self.check_lease()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if self.stop_requested() and remaining > self.grace_left():
                raise JobAbandoned(f"{remaining:.1f}s of work left, more than the grace period")
            self.lease_lost.wait(min(remaining, 0.1))


Handler = Callable[[HandlerContext], None]
HANDLERS: dict[str, Handler] = {}
DEFAULT_KIND = "file"


_BUILTIN: set[Handler] = set()  # pq's own handlers: they start no programs


def register_handler(kind: str, handler: Handler) -> None:
    if not kind.isidentifier():
        raise ValueError(f"handler kind must be an identifier, not {kind!r}")
    HANDLERS[kind] = handler


def is_builtin(handler: Handler) -> bool:
    return handler in _BUILTIN


def resolve(payload: str) -> tuple[str, Handler, str]:
    """(kind, handler, argument) for a payload."""
    kind, sep, rest = payload.partition(":")
    if sep and kind in HANDLERS:
        return kind, HANDLERS[kind], rest
    return DEFAULT_KIND, HANDLERS[DEFAULT_KIND], payload


# ---------------------------------------------------------------- the file handler


def safe_job_path(jobs_dir: Path, payload: str) -> Path:
    """The real path of the job file, which must lie inside ``jobs_dir``.

    Rejects ``..`` components, absolute paths elsewhere and symlinks leading out,
    before anything is opened.
    """
    if not payload or payload != payload.strip():
        raise UnsafePath(f"job path {payload!r} is empty or has surrounding blanks")
    # Split as PurePosixPath would ("a//./b" is a, b) but on strings: pathlib's parsing
    # and comparisons were most of this check's cost, on every job.
    parts = [part for part in payload.split("/") if part and part != "."]
    if ".." in parts:
        raise UnsafePath(f"job path {payload!r} contains '..'; refused")
    root = _real_root(jobs_dir)
    if not os.path.isabs(payload) and parts:
        beneath = _beneath(str(root), parts)
        if beneath is not None:  # no symlink below the real root: it cannot lead out
            return Path(beneath)
    real = Path(payload).resolve() if os.path.isabs(payload) else root.joinpath(*parts).resolve()
    if real == root or not real.is_relative_to(root):
        raise UnsafePath(
            f"job path {payload!r} resolves to {real}, outside the jobs directory {root}; refused"
        )
    return real


_real_roots: dict[tuple[str, int, int], Path] = {}


def _real_root(jobs_dir: Path) -> Path:
    """The jobs directory's real path, resolved again whenever the directory it names
    changes (a symlink pointed elsewhere, a new mount): one stat a job, where resolving
    the whole path took an lstat per component and a sixth of a consumer's CPU."""
    try:
        seen = os.stat(jobs_dir)
    except OSError:
        return jobs_dir.resolve()  # missing: the open says so, as it always did
    key = (str(jobs_dir), seen.st_dev, seen.st_ino)
    root = _real_roots.get(key)
    if root is None:
        if len(_real_roots) > 64:
            _real_roots.clear()
        root = _real_roots[key] = jobs_dir.resolve()
    return root


def _beneath(root: str, parts: list[str]) -> str | None:
    """``root`` joined with ``parts``, or None if one of them is a symlink (then the
    path must be resolved); ``root`` is already real, so only the parts can be."""
    path = root
    for part in parts:
        path = f"{path}/{part}"
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return None
        except (FileNotFoundError, NotADirectoryError):
            break  # nothing below exists, so nothing below can lead out; the open says so
    return os.path.join(root, *parts)


def append_completion(ctx: HandlerContext) -> None:
    """The default handler: wait the work time, then append the completion line once.

    Effectively-once: under an exclusive lock on the file, the line is appended only
    if the file does not already hold this job's completion line, so a job redelivered
    after a crash (or a zombie woken up late) never writes it twice.
    """
    path = safe_job_path(ctx.jobs_dir, ctx.argument)
    ctx.sleep(ctx.work_seconds)
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PermanentError(f"job file {path} does not exist") from None
    except IsADirectoryError:
        raise PermanentError(f"job path {path} is a directory, not a job file") from None
    except OSError as error:
        if error.errno == errno.ELOOP:  # replaced by a symlink after the check
            raise UnsafePath(f"job path {path} became a symlink; refused") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PermanentError(f"job path {path} is not a regular file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        content = _read_all(fd)
        if jobfiles.holds_completion(content.decode("utf-8", errors="replace"), ctx.job.id):
            # Written by an earlier delivery of this job, whose fsync may have failed: the
            # kernel then keeps showing the line it may never write. Write the same bytes
            # again and fsync, so the line is on disk before the job is reported done.
            _rewrite_durably(path, content)
            return
        ctx.check_lease()
        line = jobfiles.completion_line(ctx.job.id, ctx.job.attempts, ctx.consumer_id)
        data = line.encode("utf-8")
        if os.write(fd, data) != len(data):
            raise OSError(errno.EIO, f"short write to {path}")
        if ctx.sync_later is None:
            os.fsync(fd)
        else:
            # Unlocked now: a later delivery must not wait for this batch's fsync (the
            # holder may be stopped); it sees the line and writes it durably itself.
            fcntl.flock(fd, fcntl.LOCK_UN)
            ctx.sync_later(fd)
            fd = -1  # the consumer's now
    finally:
        if fd >= 0:
            os.close(fd)  # also drops the lock


def _read_all(fd: int) -> bytes:
    chunks, offset = [], 0
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _rewrite_durably(path: Path, content: bytes) -> None:
    """Write ``content`` over the file's own bytes (no O_APPEND: pwrite would append)."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if os.pwrite(fd, content, 0) != len(content):
            raise OSError(errno.EIO, f"short write to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)


register_handler(DEFAULT_KIND, append_completion)
_BUILTIN.add(append_completion)
