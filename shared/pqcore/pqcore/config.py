"""Queue settings in one place: defaults from the design, overridden by ``PQ_*`` variables.

Services and the CLI build on ``QueueSettings.from_env()`` and let their flags
override single fields with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from pqcore.exceptions import InvalidArgument

DEFAULT_DB = "var/queue.db"


@dataclasses.dataclass(frozen=True)
class QueueSettings:
    db: str = DEFAULT_DB  # path, sqlite:///path, or postgresql://...
    lease_seconds: float = 30.0  # a claim holds the job this long unless heartbeats extend it
    max_attempts: int = 5
    max_payload_bytes: int = 64 * 1024
    # Retry backoff of a failed job: min(cap, base * 2**(attempt-1)), jittered down by up to half.
    backoff_base_seconds: float = 5.0
    backoff_cap_seconds: float = 3600.0
    # SQLite: FULL survives power loss once a commit returns; NORMAL may lose the last commits.
    sqlite_synchronous: str = "FULL"
    busy_timeout_ms: int = 5000
    busy_retries: int = 8  # extra attempts of a whole transaction after SQLITE_BUSY
    # PostgreSQL: connections each process keeps at most (its threads share them).
    pg_pool_size: int = 4
    # SQLite: how idle consumers learn of new jobs. "doorbell" (unix datagram sockets
    # beside the database, see pqcore.doorbell) or "poll" (re-check every 50 ms).
    sqlite_wakeup: str = "doorbell"

    def __post_init__(self) -> None:
        if self.lease_seconds <= 0:
            raise InvalidArgument("lease_seconds must be positive")
        if self.max_attempts < 1:
            raise InvalidArgument("max_attempts must be at least 1")
        if self.max_payload_bytes < 1:
            raise InvalidArgument("max_payload_bytes must be positive")
        if self.backoff_base_seconds < 0 or self.backoff_cap_seconds < self.backoff_base_seconds:
            raise InvalidArgument("backoff needs 0 <= base <= cap")
        if self.sqlite_synchronous.upper() not in {"FULL", "NORMAL", "EXTRA", "OFF"}:
            raise InvalidArgument("sqlite_synchronous must be FULL, NORMAL, EXTRA or OFF")
        if self.pg_pool_size < 1:
            raise InvalidArgument("pg_pool_size must be at least 1")
        if self.sqlite_wakeup not in {"doorbell", "poll"}:
            raise InvalidArgument("sqlite_wakeup must be doorbell or poll")
        if self.busy_timeout_ms < 0 or self.busy_retries < 0:
            raise InvalidArgument("busy_timeout_ms and busy_retries must not be negative")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> QueueSettings:
        """Read ``PQ_<FIELD>`` for every field (e.g. ``PQ_DB``, ``PQ_LEASE_SECONDS``)."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            raw = env.get("PQ_" + field.name.upper())
            if raw is None or raw == "":
                continue
            values[field.name] = _convert(field.name, str(field.type), raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def _convert(name: str, type_name: str, raw: str) -> object:
    try:
        if type_name == "int":
            return int(raw)
        if type_name == "float":
            return float(raw)
    except ValueError:
        raise InvalidArgument(f"PQ_{name.upper()}={raw!r} is not a number") from None
    return raw
