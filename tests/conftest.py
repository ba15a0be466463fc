"""Fixtures shared by every tier. Tier-specific fixtures live in each tier's conftest."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends import BACKENDS, BackendHandle

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BackendHandle]:
    """Fresh storage of each backend in turn (tests/backends.py), for the tiers that run
    against every backend."""
    with BACKENDS[request.param](tmp_path) as handle:
        yield handle


def pq_command() -> list[str]:
    """The installed `pq` entry point of the running interpreter's environment."""
    return [str(VENV_BIN / "pq")]


def require(condition: bool, reason: str) -> None:
    """Skip when a component truly cannot exist here; in CI a missing component fails."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required component missing in CI: {reason}")
    print(f"SKIP: {reason}", file=sys.stderr)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _keep_main_module() -> Iterator[None]:
    """Streamlit's AppTest runs an app script as ``__main__`` and leaves it there; a later
    test that spawns processes would then make every child re-run that app and die at
    start (a multiprocessing pool then waits forever). Put the real one back."""
    main = sys.modules.get("__main__")
    yield
    if main is not None and sys.modules.get("__main__") is not main:
        sys.modules["__main__"] = main
