"""Job files: written atomically, and recognised as processed by their completion line."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from pathlib import Path

JOB_FILE_GLOB = "job-*.txt"
TEMP_PREFIX = ".tmp-"
# The consumer's completion line: "<iso time> job=<id> attempt=<n> consumer=<id>".
COMPLETION_LINE = re.compile(r"^\S+ job=(\d+) attempt=\d+ consumer=\S+$", re.MULTILINE)


def new_job_file_name(now: dt.datetime | None = None) -> str:
    """Sortable by creation time, unique across producers and restarts."""
    now = now or dt.datetime.now(dt.UTC)
    return f"job-{now:%Y%m%dT%H%M%S.%f}Z-{secrets.token_hex(4)}.txt"


def write_atomically(directory: Path, name: str, content: str) -> Path:
    """Write ``content`` to ``directory/name`` so that a crash leaves either no file or
    the whole file: temporary name, fsync, rename, fsync of the directory."""
    final = directory / name
    temp = directory / f"{TEMP_PREFIX}{name}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, content.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temp, final)
    fsync_directory(directory)
    return final


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def completion_job_ids(text: str) -> set[int]:
    """Ids of the jobs whose completion line the file holds."""
    return {int(m.group(1)) for m in COMPLETION_LINE.finditer(text)}


def completion_line(
    job_id: int, attempt: int, consumer_id: str, at: dt.datetime | None = None
) -> str:
    at = at or dt.datetime.now(dt.UTC)
    stamp = at.isoformat(timespec="microseconds")
    return f"{stamp} job={job_id} attempt={attempt} consumer={consumer_id}\n"


def holds_completion(text: str, job_id: int) -> bool:
    return job_id in completion_job_ids(text)
