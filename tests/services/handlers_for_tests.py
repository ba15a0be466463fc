"""Test-only job kinds, loaded by consumers through PQ_HANDLER_MODULES."""

from __future__ import annotations

import errno
import os
import sqlite3
import time

from services.consumer.handlers import (
    HandlerContext,
    PermanentError,
    TransientError,
    append_completion,
    register_handler,
)


def stubborn(ctx: HandlerContext) -> None:
    """Works for ``<seconds>`` ignoring shutdown and lease loss (an uncooperative handler)."""
    time.sleep(float(ctx.argument))


def slow(ctx: HandlerContext) -> None:
    """``<seconds>:<job file>``: the file handler with that work time (a cooperative
    handler: it waits with ``ctx.sleep`` and checks the lease before writing)."""
    seconds, _, path = ctx.argument.partition(":")
    ctx.work_seconds = float(seconds)
    ctx.argument = path
    append_completion(ctx)


def wedge(ctx: HandlerContext) -> None:
    """Holds the SQLite write lock (at most ``<seconds>``) until a file ``release-<job id>``
    appears in the jobs directory: the consumer's lease heartbeats cannot be written, as
    when the database or its disk wedges, and its main loop is stuck in here."""
    conn = sqlite3.connect(os.environ["PQ_DB"], isolation_level=None, timeout=30)
    release = ctx.jobs_dir / f"release-{ctx.job.id}"
    deadline = time.monotonic() + float(ctx.argument)
    try:
        conn.execute("BEGIN IMMEDIATE")
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        conn.close()  # rolls the empty transaction back


def flaky(ctx: HandlerContext) -> None:
    """Fails transiently until it has been called ``<n>`` times for this job."""
    counter = ctx.jobs_dir / f"flaky-{ctx.job.id}.count"
    calls = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(calls))
    if calls <= int(ctx.argument):
        raise TransientError(f"flaky call {calls}")


def eagain(ctx: HandlerContext) -> None:
    raise OSError(errno.EAGAIN, "resource temporarily unavailable")


def broken(ctx: HandlerContext) -> None:
    raise ValueError(f"cannot process {ctx.argument!r}")


def reject(ctx: HandlerContext) -> None:
    raise PermanentError(f"refusing {ctx.argument!r}")


for _kind, _handler in (
    ("stubborn", stubborn),
    ("slow", slow),
    ("wedge", wedge),
    ("flaky", flaky),
    ("eagain", eagain),
    ("broken", broken),
    ("reject", reject),
):
    register_handler(_kind, _handler)
