"""Storage errors of the queue, counted per kind: ``pq_storage_errors_total{kind}``.

Every service opens its queue through ``open_service_queue``, which wraps it in
``CountingQueue``: any ``StorageError`` a queue call raises (a failed fsync, a
read-only or full disk, a locked or unreachable database) is counted before it goes
on to the caller, which logs it and retries as before; one of work the queue does on
its own after a call succeeded (a checkpoint) is counted and logged here, since no
caller sees it. Job-file errors of the producer are counted with ``count("job_file")``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from loguru import logger
from prometheus_client import Counter

from pqcore import StorageError

STORAGE_ERRORS = Counter(
    "pq_storage_errors_total",
    "queue calls (or job-file writes) that failed on storage, by kind",
    ["kind"],
)
KINDS = {
    "DiskIOError": "io",
    "DatabaseReadOnly": "read_only",
    "DiskFull": "disk_full",
    "DatabaseBusy": "busy",
    "DatabaseCorrupt": "corrupt",
    "DatabaseUnavailable": "unavailable",
    "DatabaseNotFound": "not_found",
    "SchemaTooNew": "schema_too_new",
    "StorageError": "other",
}


def kind_of(error: StorageError) -> str:
    name = type(error).__name__
    return KINDS.get(name) or re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def count(kind: str) -> None:
    STORAGE_ERRORS.labels(kind=kind).inc()


def background_error(error: StorageError) -> None:
    """No call raised it, so nobody else logs it: the disk is failing all the same."""
    count(kind_of(error))
    logger.warning("storage error after a successful call: {}", error)


class CountingQueue:
    """The queue, with every ``StorageError`` its methods raise counted, and those of
    the work it does on its own (a checkpoint) counted and logged as well."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        queue.on_storage_error(background_error)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._queue, name)
        if not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attribute(*args, **kwargs)
            except StorageError as error:
                count(kind_of(error))
                raise

        return call

    def __enter__(self) -> CountingQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.close()
