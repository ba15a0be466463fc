"""Fixtures for the console tests: a seeded queue, a users file, and AppTest drivers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pqcore import Queue, QueueSettings, open_queue
from tests.consoles.seeding import PASSWORDS, Seeded, seed, write_users

APPS = Path(__file__).resolve().parents[2] / "services" / "consoles"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


@pytest.fixture
def seeded(db: Path) -> Seeded:
    queue = open_queue(str(db), settings=QueueSettings(db=str(db)))
    try:
        return seed(queue)
    finally:
        queue.close()


@pytest.fixture
def console_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db: Path) -> Path:
    """PQ_DB and PQ_CONSOLE_USERS for the app under test (AppTest runs it in-process)."""
    users = write_users(tmp_path / "users.json")
    monkeypatch.setenv("PQ_DB", str(db))
    monkeypatch.setenv("PQ_CONSOLE_USERS", str(users))
    monkeypatch.delenv("PQ_CONSOLE_ONE_TIME_HASH", raising=False)
    monkeypatch.delenv("PQ_CONSOLE_SESSION_MINUTES", raising=False)
    return users


@pytest.fixture
def inspect_queue(db: Path) -> Callable[[], Queue]:
    """A fresh handle on the test's database, to check what the console changed."""

    def opened() -> Queue:
        return open_queue(str(db), settings=QueueSettings(db=str(db)), create=False)

    return opened


def start(app: str) -> AppTest:
    return AppTest.from_file(str(APPS / f"{app}_app.py"), default_timeout=30).run()


def login(at: AppTest, user: str, password: str | None = None) -> AppTest:
    at.text_input(key="login_user").input(user)
    at.text_input(key="login_password").input(PASSWORDS[user] if password is None else password)
    return at.button[0].click().run()


def logged_in(app: str, user: str) -> AppTest:
    at = login(start(app), user)
    assert not at.exception, at.exception
    assert "pq_session" in at.session_state
    return at
