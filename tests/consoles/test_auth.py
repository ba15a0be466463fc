"""Password hashes and the users file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.consoles import auth


def test_hash_verifies_only_the_right_password() -> None:
    encoded = auth.hash_password("correct horse")
    assert encoded.startswith("scrypt$16384$8$1$") and "correct horse" not in encoded
    assert auth.verify_password("correct horse", encoded)
    assert not auth.verify_password("correct horsE", encoded)
    assert auth.hash_password("correct horse") != encoded  # a fresh salt every time


@pytest.mark.parametrize("broken", ["", "plain", "bcrypt$x$y", "scrypt$1$2$3$!!$??"])
def test_a_malformed_hash_never_verifies(broken: str) -> None:
    assert not auth.verify_password("anything", broken)
    assert not auth.check_hash_format(broken)


def test_empty_and_huge_passwords_are_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        auth.hash_password("")
    with pytest.raises(ValueError, match="longer"):
        auth.hash_password("x" * (auth.MAX_PASSWORD + 1))


def write(tmp_path: Path, users: object) -> dict[str, str]:
    path = tmp_path / "users.json"
    path.write_text(json.dumps(users))
    return {auth.USERS_ENV: str(path)}


def test_users_file_is_read_with_roles(tmp_path: Path) -> None:
    good = auth.hash_password("pw")
    users = auth.load_users(write(tmp_path, {
        "alice": {"role": "admin", "password_hash": good},
        "bob": {"role": "ops", "password_hash": good},
    }))  # fmt: skip
    assert users["alice"].may("bulk") and users["alice"].may("act")
    assert users["alice"].may("configure")
    assert users["bob"].may("act") and not users["bob"].may("bulk")
    assert not users["bob"].may("configure")  # limits, settings, schedules: admin only


@pytest.mark.parametrize(
    ("users", "message"),
    [
        ({"eve": {"role": "admin", "password": "pw"}}, "plain 'password'"),
        ({"eve": {"role": "root", "password_hash": "x"}}, "role 'root'"),
        ({"eve": {"role": "ops", "password_hash": "x"}}, "no valid password_hash"),
        ({"bad name!": {"role": "ops"}}, "invalid user name"),
        ([], "JSON object"),
    ],
)
def test_a_bad_users_file_is_one_clear_error(tmp_path: Path, users: object, message: str) -> None:
    with pytest.raises(auth.ConfigError, match=message):
        auth.load_users(write(tmp_path, users))


def test_missing_or_unreadable_users_file(tmp_path: Path) -> None:
    with pytest.raises(auth.ConfigError, match="no users file"):
        auth.load_users({auth.USERS_ENV: str(tmp_path / "absent.json")})
    (tmp_path / "users.json").write_text("{not json")
    with pytest.raises(auth.ConfigError, match="not valid JSON"):
        auth.load_users({auth.USERS_ENV: str(tmp_path / "users.json")})


def test_no_configuration_means_no_users_and_one_time_hash_is_admin() -> None:
    assert auth.load_users({}) == {}
    encoded = auth.hash_password("once")
    [user] = auth.load_users({auth.ONE_TIME_HASH_ENV: encoded}).values()
    assert (user.name, user.role) == ("admin", "admin")


@pytest.mark.parametrize("value", ["0", "-1", "abc", "99999"])
def test_session_minutes_are_validated(value: str) -> None:
    with pytest.raises(auth.ConfigError):
        auth.session_seconds({auth.SESSION_MINUTES_ENV: value})
    assert auth.session_seconds({}) == 30 * 60


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_lockout_is_per_client_and_name_with_growing_delays() -> None:
    user = auth.User("alice", "admin", auth.hash_password("pw", n=2**10))
    clock, seen = Clock(), []
    gate = auth.Authenticator({"alice": user}, clock=clock, observer=lambda *e: seen.append(e))
    assert gate.login("alice", "pw", "ip:10.0.0.1") == user
    for _ in range(auth.FREE_FAILURES):
        assert gate.login("alice", "nope", "ip:10.0.0.9") is None
    assert gate.locked_for("alice", "ip:10.0.0.9") == auth.FIRST_DELAY
    assert gate.login("alice", "pw", "ip:10.0.0.9") is None  # refused while it waits
    # Anyone else is not held up: another address, a browser that logged in before.
    assert gate.login("alice", "pw", "ip:10.0.0.1") == user
    assert gate.login("alice", "pw", "device:1234") == user
    assert gate.locked_for("bob", "ip:10.0.0.9") == 0
    clock.now += auth.FIRST_DELAY
    assert gate.login("alice", "nope", "ip:10.0.0.9") is None  # the next wait doubles
    assert gate.locked_for("alice", "ip:10.0.0.9") == 2 * auth.FIRST_DELAY
    assert auth.lockout_seconds(100) == auth.MAX_DELAY
    lockouts = [e for e in seen if e[0] == "lockout"]
    assert lockouts == [
        ("lockout", "ip:10.0.0.9", "alice", auth.FIRST_DELAY),
        ("lockout", "ip:10.0.0.9", "alice", 2 * auth.FIRST_DELAY),
    ]
    assert sum(e[0] == "failure" for e in seen) == auth.FREE_FAILURES + 1
    clock.now += auth.FORGET_AFTER + 1  # a quiet day: forgotten
    assert gate.login("alice", "pw", "ip:10.0.0.9") == user


def test_a_session_token_is_signed_expires_and_is_revoked_on_logout() -> None:
    users = {"alice": auth.User("alice", "admin", auth.hash_password("pw", n=2**10))}
    clock = Clock()
    sessions = auth.Sessions(lambda: 600.0, clock=clock)
    token = sessions.issue(users["alice"])
    assert "pw" not in token and users["alice"].password_hash not in token
    resumed = sessions.resume(token, users)
    assert resumed is not None and (resumed.name, resumed.role) == ("alice", "admin")
    body, signature = token.split(".")
    assert sessions.resume(body + "." + signature[::-1], users) is None  # tampered
    assert auth.Sessions(lambda: 600.0, clock=clock).resume(token, users) is None  # restart
    clock.now += 599
    assert sessions.alive(token, users)
    clock.now += 601  # idle too long: ended for good
    assert not sessions.alive(token, users)
    clock.now -= 601
    assert sessions.resume(token, users) is None
    token = sessions.issue(users["alice"])
    sessions.revoke(token)
    assert sessions.resume(token, users) is None
    token = sessions.issue(users["alice"])
    for _ in range(int(auth.SESSION_MAX_SECONDS // 500) + 1):  # active, but not forever
        clock.now += 500
        sessions.touch(token)
    assert sessions.resume(token, users) is None
    token = sessions.issue(users["alice"])
    assert sessions.resume(token, {}) is None  # the user was removed


def test_a_device_token_is_bound_to_the_user_and_the_password() -> None:
    alice = auth.User("alice", "admin", auth.hash_password("pw", n=2**10))
    token = auth.device_token(alice, now=1_000.0)
    assert auth.trusted_device(token, alice, now=1_000.0 + 3600)
    assert not auth.trusted_device(token, alice, now=1_000.0 + auth.DEVICE_SECONDS + 1)
    bob = auth.User("bob", "ops", alice.password_hash)
    assert not auth.trusted_device(token, bob, now=1_000.0)
    changed = auth.User("alice", "admin", auth.hash_password("new", n=2**10))
    assert not auth.trusted_device(token, changed, now=1_000.0)  # a new password
    assert not auth.trusted_device("garbage", alice)
