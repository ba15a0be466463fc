"""Fixtures of the services tier: a fresh backend and a `System` of real processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends import BackendHandle
from tests.services.system import System


@pytest.fixture
def system(tmp_path: Path, backend: BackendHandle) -> Iterator[System]:
    system = System(tmp_path, backend)
    yield system
    system.stop_all()
