"""Notification settings: channels, console link, storm control and delivery, from ``PQ_*``.

Channels are apprise URLs (``mailtos://``, ``slack://``/Slack webhook URLs, ``json://``
...), given in ``PQ_NOTIFY_URLS`` (separated by spaces, commas or newlines) and/or in
an apprise configuration file named by ``PQ_NOTIFY_CONFIG`` (TEXT or YAML). No channel
configured means notifications are off.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping

_SEPARATORS = re.compile(r"[\s,]+")


class NotifySettingsError(ValueError):
    """A notification setting has an invalid value; the message names the variable."""


@dataclasses.dataclass(frozen=True)
class NotifySettings:
    urls: tuple[str, ...] = ()
    config_path: str | None = None
    console_url: str | None = None  # "{job_id}" in it is replaced by the job's id
    # Storm control, per event kind.
    window_seconds: float = 300.0  # after `burst` messages in this window: one digest
    burst: int = 5
    dedup_seconds: float = 3600.0  # the same event (kind + job/consumer) once per this
    # Delivery.
    queue_size: int = 1000  # messages waiting for the sender; beyond: dropped, counted
    retries: int = 4  # further attempts per channel after a failed delivery
    retry_base_seconds: float = 1.0
    retry_cap_seconds: float = 60.0
    flush_seconds: float = 5.0  # shutdown wait for queued messages; within stopwaitsecs=10

    def __post_init__(self) -> None:
        positive = ("window_seconds", "retry_base_seconds", "retry_cap_seconds")
        for name in positive:
            if not getattr(self, name) > 0:
                raise NotifySettingsError(f"{_env_name(name)} must be positive")
        for name in ("burst", "queue_size"):
            if getattr(self, name) < 1:
                raise NotifySettingsError(f"{_env_name(name)} must be at least 1")
        for name in ("dedup_seconds", "retries", "flush_seconds"):
            if getattr(self, name) < 0:
                raise NotifySettingsError(f"{_env_name(name)} must not be negative")

    @property
    def configured(self) -> bool:
        return bool(self.urls or self.config_path)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotifySettings:
        env = os.environ if env is None else env
        values: dict[str, object] = {
            "urls": tuple(u for u in _SEPARATORS.split(env.get("PQ_NOTIFY_URLS", "")) if u),
            "config_path": env.get("PQ_NOTIFY_CONFIG") or None,
            "console_url": env.get("PQ_CONSOLE_URL") or None,
        }
        for field in dataclasses.fields(cls):
            name = _env_name(field.name)
            raw = env.get(name, "").strip()
            if field.name in values or not raw:
                continue
            convert = int if field.type == "int" else float
            try:
                values[field.name] = convert(raw)
            except ValueError:
                raise NotifySettingsError(f"{name} must be a number, not {raw!r}") from None
        return cls(**values)  # type: ignore[arg-type]


def _env_name(field_name: str) -> str:
    return "PQ_NOTIFY_" + field_name.upper()
