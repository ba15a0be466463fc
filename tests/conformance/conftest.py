"""The conformance suite: written once, run against every backend in tests/backends.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pqcore import PersistentQInterface
from tests.backends import BACKENDS, FakeClock, QueueMaker


@pytest.fixture(params=sorted(BACKENDS))
def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QueueMaker]:
    """Opens queues of the backend under test; every queue made in one test shares storage."""
    with BACKENDS[request.param](tmp_path) as make:
        yield make


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(make_queue: QueueMaker, clock: FakeClock) -> PersistentQInterface:
    return make_queue(clock=clock)
