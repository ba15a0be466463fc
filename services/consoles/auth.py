"""Console users: password hashes, roles, the login gate and session timeouts.

Users come from a JSON file named by ``PQ_CONSOLE_USERS``::

    {"alice": {"role": "admin", "password_hash": "scrypt$16384$8$1$<salt>$<key>"},
     "bob":   {"role": "ops",   "password_hash": "..."}}

Make a hash with ``pq console hash-password``. Only hashes are ever stored: scrypt
with a random salt per password, compared in constant time. With no users file,
``pq console`` makes a one-time password for the user ``admin``, prints it and hands
only its hash to the app (``PQ_CONSOLE_ONE_TIME_HASH``); an app started some other
way makes one itself and prints it to its log. The console is never left open.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Mapping
from pathlib import Path

USERS_ENV = "PQ_CONSOLE_USERS"
ONE_TIME_HASH_ENV = "PQ_CONSOLE_ONE_TIME_HASH"
SESSION_MINUTES_ENV = "PQ_CONSOLE_SESSION_MINUTES"
ONE_TIME_USER = "admin"
DEFAULT_SESSION_MINUTES = 30.0

# scrypt cost: ~50 ms and 16 MiB per check, which makes guessing expensive offline.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
USER_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MAX_PASSWORD = 1024

# Roles and what they may do: view; act on one thing (a job: resubmit, cancel, even a
# running one; a queue: pause, resume); act on many jobs (selection or filter);
# configure (queue limits, runtime settings, schedules).
ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({"view", "act", "bulk", "configure"}),
    "ops": frozenset({"view", "act"}),
}

# Repeated wrong passwords for one user name lock it out for a while (per process).
MAX_FAILURES = 5
LOCKOUT_SECONDS = 60.0


class ConfigError(Exception):
    """The console's user configuration is unusable; the message says how to fix it."""


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    role: str
    password_hash: str

    def may(self, permission: str) -> bool:
        return permission in ROLES[self.role]


# ------------------------------------------------------------------ hashing


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """``scrypt$N$r$p$salt$key`` (salt and key base64), safe to store in a file."""
    if not password:
        raise ValueError("the password is empty")
    if len(password) > MAX_PASSWORD:
        raise ValueError(f"the password is longer than {MAX_PASSWORD} characters")
    salt = secrets.token_bytes(16)
    key = _scrypt(password, salt, n, r, p)
    return "$".join(["scrypt", str(n), str(r), str(p), _b64(salt), _b64(key)])


def verify_password(password: str, encoded: str) -> bool:
    """True if ``password`` matches the stored hash. Never raises on a bad password."""
    try:
        scheme, n, r, p, salt, key = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def check_hash_format(encoded: object) -> bool:
    if not isinstance(encoded, str):
        return False
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = (int(x) for x in parts[1:4])
        base64.b64decode(parts[4], validate=True)
        base64.b64decode(parts[5], validate=True)
    except ValueError:
        return False
    return n >= 2**10 and n & (n - 1) == 0 and r >= 1 and p >= 1


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    if len(password) > MAX_PASSWORD:
        raise ValueError("password too long")
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def new_one_time_password() -> str:
    return secrets.token_urlsafe(12)


# ------------------------------------------------------------------ configuration


def load_users(env: Mapping[str, str] | None = None) -> dict[str, User]:
    """The configured users, or {} when none are configured. Raises ``ConfigError``."""
    env = os.environ if env is None else env
    path = env.get(USERS_ENV, "").strip()
    if path:
        return read_users_file(Path(path))
    one_time = env.get(ONE_TIME_HASH_ENV, "").strip()
    if one_time:
        if not check_hash_format(one_time):
            raise ConfigError(f"{ONE_TIME_HASH_ENV} is not a password hash")
        return {ONE_TIME_USER: User(ONE_TIME_USER, "admin", one_time)}
    return {}


def read_users_file(path: Path) -> dict[str, User]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{USERS_ENV}: no users file at {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{USERS_ENV}: cannot read {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{USERS_ENV}: {path} is not valid JSON ({error})") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{USERS_ENV}: {path} must be a JSON object of user -> settings")
    users = {}
    for name, entry in raw.items():
        if not USER_NAME.match(name):
            raise ConfigError(f"{path}: invalid user name {name!r} (1-64 of A-Z a-z 0-9 _.@-)")
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: user {name!r} must map to {{role, password_hash}}")
        if "password" in entry:
            raise ConfigError(
                f"{path}: user {name!r} has a plain 'password'; store only a hash "
                "(pq console hash-password)"
            )
        role = entry.get("role")
        if role not in ROLES:
            raise ConfigError(f"{path}: user {name!r} has role {role!r}; expected admin or ops")
        encoded = entry.get("password_hash")
        if not check_hash_format(encoded):
            raise ConfigError(
                f"{path}: user {name!r} has no valid password_hash (pq console hash-password)"
            )
        users[name] = User(name, str(role), str(encoded))
    return users


def session_seconds(env: Mapping[str, str] | None = None) -> float:
    env = os.environ if env is None else env
    raw = env.get(SESSION_MINUTES_ENV, "").strip()
    if not raw:
        return DEFAULT_SESSION_MINUTES * 60
    try:
        minutes = float(raw)
    except ValueError:
        raise ConfigError(f"{SESSION_MINUTES_ENV} must be a number of minutes") from None
    if not 0 < minutes <= 7 * 24 * 60:
        raise ConfigError(f"{SESSION_MINUTES_ENV} must be between 0 and 10080 minutes")
    return minutes * 60


# ------------------------------------------------------------------ checking a login


class Authenticator:
    """Checks passwords against the users and locks a name out after repeated failures."""

    def __init__(self, users: Mapping[str, User]) -> None:
        self.users = dict(users)
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        # A name that does not exist still costs one scrypt, so timing reveals nothing.
        self._decoy = hash_password(secrets.token_urlsafe(16))

    def login(self, name: str, password: str) -> User | None:
        """The user if the password is right; None otherwise (and during a lockout)."""
        name = name.strip()
        if not name or not USER_NAME.match(name) or len(password) > MAX_PASSWORD:
            return None
        if self.locked_for(name) > 0:
            return None
        user = self.users.get(name)
        ok = verify_password(password, user.password_hash if user else self._decoy)
        if user is not None and ok:
            with self._lock:
                self._failures.pop(name, None)
            return user
        with self._lock:
            now = time.monotonic()
            recent = [t for t in self._failures.get(name, []) if now - t < LOCKOUT_SECONDS]
            self._failures[name] = [*recent, now]
        return None

    def locked_for(self, name: str) -> float:
        """Seconds left in ``name``'s lockout (0 when it may try)."""
        with self._lock:
            now = time.monotonic()
            recent = [t for t in self._failures.get(name, []) if now - t < LOCKOUT_SECONDS]
            if len(recent) < MAX_FAILURES:
                return 0.0
            return LOCKOUT_SECONDS - (now - recent[-MAX_FAILURES])
