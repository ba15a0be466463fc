"""The backends every conformance test runs against.

Each entry makes a fresh, empty queue for one test. The PostgreSQL entry adds itself
here (a throwaway cluster started by the test setup); SQLite needs only a temp dir.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from pqcore import Queue, QueueSettings, open_queue


class FakeClock:
    """A clock the test moves by hand, so leases and backoffs expire on demand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


QueueMaker = Callable[..., Queue]


@dataclasses.dataclass(frozen=True)
class BackendHandle:
    """One test's fresh storage: ``make`` opens queues on it in this process, and ``url``
    is what another process (a subprocess, a service) passes to ``open_queue``/``PQ_DB``."""

    name: str
    url: str
    make: QueueMaker


@contextmanager
def sqlite_backend(tmp_path: Path) -> Iterator[BackendHandle]:
    path = str(tmp_path / "queue.db")
    opened: list[Queue] = []

    def make(clock: Callable[[], float] | None = None, **settings: Any) -> Queue:
        queue = open_queue(path, settings=QueueSettings(db=path, **settings), clock=clock)
        opened.append(queue)
        return queue

    yield BackendHandle("sqlite", path, make)
    for queue in opened:
        queue.close()


@contextmanager
def postgresql_backend(tmp_path: Path) -> Iterator[BackendHandle]:
    """A fresh database on the session's throwaway PostgreSQL cluster (tests/pg.py)."""
    from tests.pg import cluster

    opened: list[Queue] = []
    with cluster().database() as url:

        def make(clock: Callable[[], float] | None = None, **settings: Any) -> Queue:
            queue = open_queue(url, settings=QueueSettings(db=url, **settings), clock=clock)
            opened.append(queue)
            return queue

        try:
            yield BackendHandle("postgresql", url, make)
        finally:
            for queue in opened:
                queue.close()


# name -> context manager factory taking the test's tmp_path
BACKENDS: dict[str, Callable[[Path], AbstractContextManager[BackendHandle]]] = {
    "sqlite": sqlite_backend,
    "postgresql": postgresql_backend,
}
