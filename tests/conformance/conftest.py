"""The conformance suite: written once, run against every backend in tests/backends.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pqcore import Queue
from tests.backends import BackendHandle, FakeClock, QueueMaker


@pytest.fixture
def make_queue(backend: BackendHandle) -> QueueMaker:
    """Opens queues on the test's storage; every queue made in one test shares it."""
    return backend.make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(make_queue: QueueMaker, clock: FakeClock) -> Iterator[Queue]:
    """A queue on the fake clock. Whatever a test did, the storage must audit clean after."""
    queue = make_queue(clock=clock)
    yield queue
    assert queue.doctor() == []
