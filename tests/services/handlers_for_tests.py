"""Test-only job kinds, loaded by consumers through PQ_HANDLER_MODULES."""

from __future__ import annotations

import errno
import time

from services.consumer.handlers import (
    HandlerContext,
    PermanentError,
    TransientError,
    register_handler,
)


def stubborn(ctx: HandlerContext) -> None:
    """Works for ``<seconds>`` ignoring shutdown and lease loss (an uncooperative handler)."""
    time.sleep(float(ctx.argument))


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
    ("flaky", flaky),
    ("eagain", eagain),
    ("broken", broken),
    ("reject", reject),
):
    register_handler(_kind, _handler)
