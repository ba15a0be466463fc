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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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

# Login throttling, per client and user name (per process). A client is a browser that
# presents a device token for the name (issued at its last successful login), else its
# IP address. FREE_FAILURES wrong passwords cost nothing; each further one makes that
# client wait for that name, FIRST_DELAY and doubling up to MAX_DELAY. Another client
# (another address, or a browser the user logged in from before) is never held up, so a
# stranger cannot lock a user out by guessing.
FREE_FAILURES = 5
FIRST_DELAY = 15.0
MAX_DELAY = 15 * 60.0
FORGET_AFTER = 24 * 3600.0  # a client's failures for a name are forgotten after a quiet day
MAX_TRACKED = 100_000  # (client, name) pairs remembered at most; the oldest go first

# Sessions: a signed token kept by the browser (a cookie), checked against this
# process's live sessions, so logging out revokes it and a restart ends every session.
SESSION_MAX_SECONDS = 12 * 3600.0  # a session ends this long after login, active or not
DEVICE_SECONDS = 30 * 86_400.0  # a device token is trusted this long after the login


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


@dataclasses.dataclass
class _Strikes:
    failures: int = 0
    last: float = 0.0
    wait_until: float = 0.0


class Authenticator:
    """Checks passwords against the users; throttles each (client, user name) pair on its
    own (see FREE_FAILURES), and reports each failure and each lockout to ``observer``."""

    def __init__(
        self,
        users: Mapping[str, User],
        *,
        clock: Callable[[], float] = time.monotonic,
        observer: Callable[[str, str, str, float], None] | None = None,
    ) -> None:
        self.users = dict(users)
        self._clock = clock
        self._observer = observer  # (event "failure"|"lockout", client, name, wait seconds)
        self._strikes: dict[tuple[str, str], _Strikes] = {}
        self._lock = threading.Lock()
        # A name that does not exist still costs one scrypt, so timing reveals nothing.
        self._decoy = hash_password(secrets.token_urlsafe(16))

    def login(self, name: str, password: str, client: str = "unknown") -> User | None:
        """The user if the password is right; None otherwise, and while this client
        waits after repeated failures for this name (the password is not even tried)."""
        name = name.strip()
        if not name or not USER_NAME.match(name) or len(password) > MAX_PASSWORD:
            return None
        if self.locked_for(name, client) > 0:
            return None
        user = self.users.get(name)
        ok = verify_password(password, user.password_hash if user else self._decoy)
        key = (client, name)
        if user is not None and ok:
            with self._lock:
                self._strikes.pop(key, None)
            return user
        with self._lock:
            now = self._clock()
            strikes = self._strikes.get(key)
            if strikes is None or now - strikes.last > FORGET_AFTER:
                strikes = self._strikes[key] = _Strikes()
                self._forget_oldest(now)
            strikes.failures += 1
            strikes.last = now
            wait = lockout_seconds(strikes.failures)
            strikes.wait_until = now + wait
        if self._observer is not None:
            self._observer("failure", client, name, 0.0)
            if wait > 0:
                self._observer("lockout", client, name, wait)
        return None

    def locked_for(self, name: str, client: str = "unknown") -> float:
        """Seconds ``client`` must wait before trying ``name`` again (0: it may try)."""
        with self._lock:
            strikes = self._strikes.get((client, name.strip()))
            return 0.0 if strikes is None else max(0.0, strikes.wait_until - self._clock())

    def _forget_oldest(self, now: float) -> None:
        if len(self._strikes) <= MAX_TRACKED:
            return
        for key, strikes in list(self._strikes.items()):
            if now - strikes.last > FORGET_AFTER:
                del self._strikes[key]
        while len(self._strikes) > MAX_TRACKED:
            del self._strikes[min(self._strikes, key=lambda k: self._strikes[k].last)]


def lockout_seconds(failures: int) -> float:
    """How long a client waits after its ``failures``-th wrong password for a name."""
    if failures < FREE_FAILURES:
        return 0.0
    return min(MAX_DELAY, FIRST_DELAY * 2.0 ** (failures - FREE_FAILURES))


# ------------------------------------------------------------------ tokens


def _sign(key: bytes, payload: bytes) -> str:
    return _b64url(hmac.new(key, payload, hashlib.sha256).digest())


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _split(token: str) -> tuple[bytes, dict[str, Any], str] | None:
    """(payload bytes, payload, signature) of ``payload.signature``, or None."""
    if not isinstance(token, str) or len(token) > 1024 or token.count(".") != 1:
        return None
    body, signature = token.split(".")
    try:
        raw = _unb64url(body)
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return (raw, payload, signature) if isinstance(payload, dict) else None


@dataclasses.dataclass
class _Live:
    name: str
    role: str
    last_seen: float
    expires: float


class Sessions:
    """The console's sessions: ``issue`` gives a signed, expiring token (the browser
    keeps it in a cookie; it holds a session id, the user's name and an expiry, never a
    password or hash); ``resume`` takes it back after a reload; ``revoke`` ends it.

    A token is good only while its session is live in this process: signed with a key
    made at start, idle for less than ``idle_seconds()``, younger than
    SESSION_MAX_SECONDS, not revoked, its user still configured with the same role."""

    def __init__(
        self,
        idle_seconds: Callable[[], float] = session_seconds,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = secrets.token_bytes(32)
        self._idle = idle_seconds
        self._clock = clock
        self._live: dict[str, _Live] = {}
        self._lock = threading.Lock()

    def issue(self, user: User) -> str:
        now = self._clock()
        sid = secrets.token_urlsafe(18)
        expires = now + SESSION_MAX_SECONDS
        raw = json.dumps({"sid": sid, "sub": user.name, "exp": int(expires)}).encode()
        with self._lock:
            self._prune(now)
            self._live[sid] = _Live(user.name, user.role, now, expires)
        return f"{_b64url(raw)}.{_sign(self._key, raw)}"

    def resume(self, token: str, users: Mapping[str, User]) -> User | None:
        """The user of a live session (and its idle clock restarted), else None."""
        sid = self._check(token, users)
        if sid is None:
            return None
        with self._lock:
            live = self._live[sid]
            live.last_seen = self._clock()
            return User(live.name, live.role, password_hash="")

    def alive(self, token: str, users: Mapping[str, User]) -> bool:
        """Whether the session is still live (not revoked, expired or idle too long)."""
        return self._check(token, users) is not None

    def touch(self, token: str) -> None:
        parts = _split(token)
        if parts is None:
            return
        with self._lock:
            live = self._live.get(str(parts[1].get("sid")))
            if live is not None:
                live.last_seen = self._clock()

    def revoke(self, token: str) -> None:
        parts = _split(token)
        if parts is not None:
            with self._lock:
                self._live.pop(str(parts[1].get("sid")), None)

    def _check(self, token: str, users: Mapping[str, User]) -> str | None:
        parts = _split(token)
        if parts is None:
            return None
        raw, payload, signature = parts
        if not hmac.compare_digest(signature, _sign(self._key, raw)):
            return None
        sid, now = str(payload.get("sid")), self._clock()
        with self._lock:
            live = self._live.get(sid)
            if live is None:
                return None
            user = users.get(live.name)
            idle = now - live.last_seen > self._idle()
            if now >= live.expires or idle or user is None or user.role != live.role:
                del self._live[sid]
                return None
        return sid

    def _prune(self, now: float) -> None:
        idle = self._idle()
        for sid, live in list(self._live.items()):
            if now >= live.expires or now - live.last_seen > idle:
                del self._live[sid]


def device_token(user: User, *, now: float | None = None) -> str:
    """A token this browser shows at its next logins as ``user``: signed with the
    user's password hash, so changing the password makes every one of them worthless."""
    raw = json.dumps({"sub": user.name, "iat": int(time.time() if now is None else now)})
    return f"{_b64url(raw.encode())}.{_sign(user.password_hash.encode(), raw.encode())}"


def trusted_device(token: str, user: User | None, *, now: float | None = None) -> bool:
    """Whether ``token`` is a device token issued for ``user`` within DEVICE_SECONDS."""
    parts = _split(token)
    if parts is None or user is None:
        return False
    raw, payload, signature = parts
    issued = payload.get("iat")
    if payload.get("sub") != user.name or not isinstance(issued, int):
        return False
    age = (time.time() if now is None else now) - issued
    if not 0 <= age <= DEVICE_SECONDS:
        return False
    return hmac.compare_digest(signature, _sign(user.password_hash.encode(), raw))


def device_cookie_name(name: str) -> str:
    """The cookie that holds this browser's device token for user ``name``."""
    return "pq_device_" + hashlib.sha256(name.encode()).hexdigest()[:16]
