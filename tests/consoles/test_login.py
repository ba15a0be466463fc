"""Both consoles: nothing is shown before a login; wrong passwords, lockout, timeouts."""

from __future__ import annotations

import re

import pytest

from services.consoles import auth
from tests.consoles.conftest import logged_in, login, start
from tests.consoles.seeding import Seeded


@pytest.mark.parametrize("app", ["admin", "ops"])
def test_login_required_before_anything_is_shown(app: str, console_env, seeded: Seeded) -> None:
    at = start(app)
    assert not at.exception
    assert [t.value for t in at.title] == [f"pq {app}"]
    assert len(at.metric) == 0 and len(at.dataframe) == 0
    assert "pq_session" not in at.session_state


@pytest.mark.parametrize("app", ["admin", "ops"])
def test_wrong_password_is_refused(app: str, console_env, seeded: Seeded) -> None:
    at = login(start(app), "alice", "not the password")
    assert [e.value for e in at.error] == ["Wrong user name or password."]
    assert len(at.metric) == 0 and "pq_session" not in at.session_state
    at = login(at, "mallory", "whatever")  # an unknown user gets the same answer
    assert [e.value for e in at.error] == ["Wrong user name or password."]


def test_right_password_opens_the_console(console_env, seeded: Seeded) -> None:
    at = logged_in("admin", "alice")
    assert "login_password" not in at.session_state
    assert {m.label: m.value for m in at.metric}["Dead letter"] == "3"
    assert any("alice" in c.value and "admin" in c.value for c in at.sidebar.caption)


def test_repeated_failures_make_this_client_wait(console_env, seeded: Seeded) -> None:
    at = start("admin")
    for _ in range(auth.FREE_FAILURES):
        at = login(at, "alice", "guess")
    at = login(at, "alice")  # the right password, while this client waits
    assert "pq_session" not in at.session_state
    assert re.match(r"Too many failed attempts; try again in \d+ seconds\.", at.error[0].value)


@pytest.mark.parametrize("app", ["admin", "ops"])
def test_idle_session_times_out(app: str, console_env, seeded: Seeded, monkeypatch) -> None:
    monkeypatch.setenv("PQ_CONSOLE_SESSION_MINUTES", "5")
    at = logged_in(app, "alice")
    at.session_state["pq_session"]["last_seen"] -= 5 * 60 + 1  # idle just past the limit
    at.run()
    assert "pq_session" not in at.session_state
    assert len(at.metric) == 0
    assert "timed out" in at.info[0].value


def test_logout_ends_the_session(console_env, seeded: Seeded) -> None:
    at = logged_in("ops", "bob")
    at.sidebar.button(key="logout").click().run()
    assert "pq_session" not in at.session_state and len(at.metric) == 0


def test_no_users_configured_needs_the_one_time_password(
    console_env, seeded: Seeded, monkeypatch, capfd
) -> None:
    monkeypatch.delenv("PQ_CONSOLE_USERS")
    at = start("ops")
    printed = capfd.readouterr().out
    match = re.search(r"one-time login: user 'admin', password '([^']+)'", printed)
    assert match, printed
    at = login(at, "admin", "admin")
    assert "pq_session" not in at.session_state
    at = login(at, "admin", match.group(1))
    assert "pq_session" in at.session_state and len(at.metric) > 0


def test_a_broken_users_file_is_one_clear_error(console_env, seeded: Seeded) -> None:
    console_env.write_text('{"eve": {"role": "admin", "password": "plain"}}')
    at = start("admin")
    assert "plain 'password'" in at.error[0].value
    assert len(at.text_input) == 0  # no login form on a broken configuration


def test_a_missing_database_is_one_clear_error(console_env, seeded: Seeded, monkeypatch) -> None:
    monkeypatch.setenv("PQ_DB", "/nonexistent/dir/queue.db")
    at = logged_in("ops", "bob")
    assert not at.exception
    assert "Cannot open the queue: no queue database at /nonexistent/dir/queue.db" in (
        at.error[0].value
    )
