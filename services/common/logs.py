"""Logging with loguru: readable lines on stderr and one file per component under ``logs/``.

Several processes of one component (consumers under supervisor) append to the same
file; each line is one ``write`` in append mode, so lines never interleave. The file
is not rotated by pq (rotation by several writers races); use logrotate's
``copytruncate`` or supervisor's own log rotation.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from loguru import logger

TEXT_FORMAT = (
    "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level:<7} | {extra[component]}[{process}] | {message}"
)


def setup_logging(
    component: str, *, log_dir: str | None, level: str = "INFO", json: bool = False
) -> Path | None:
    """Configure loguru for ``component``; returns the log file (None if disabled)."""
    level = level.upper()
    logger.remove()
    logger.configure(extra={"component": component})
    logger.add(sys.stderr, level=level, format=TEXT_FORMAT, serialize=json, backtrace=False)
    if not log_dir:
        return None
    path = Path(log_dir) / f"{component}.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        logger.add(
            path, level=level, format=TEXT_FORMAT, serialize=json, backtrace=False, encoding="utf-8"
        )
    except OSError as error:
        # Logging to a file is a convenience; the service still runs and logs to stderr.
        logger.warning("cannot write log file {}: {}; logging to stderr only", path, error)
        return None
    logger.debug("logging to {} (pid {})", path, os.getpid())
    return path
