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


def test_authenticator_locks_out_after_repeated_failures() -> None:
    user = auth.User("alice", "admin", auth.hash_password("pw"))
    gate = auth.Authenticator({"alice": user})
    assert gate.login("alice", "pw") == user
    for _ in range(auth.MAX_FAILURES):
        assert gate.login("alice", "nope") is None
    assert gate.locked_for("alice") > 0
    assert gate.login("alice", "pw") is None
    assert gate.locked_for("bob") == 0  # other names are not affected
