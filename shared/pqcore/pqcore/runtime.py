"""Runtime settings: defaults an operator changes while everything runs (``pq config``,
the admin console), stored in the database with who and when, audited old -> new.

The environment (``PQ_*``, the services' flags) gives each setting its initial value;
a value set here wins until it is reset. Running processes re-read the table at most
every ``RUNTIME_REFRESH_SECONDS``, so a change reaches every consumer and manager within
a few seconds without a restart. Per-queue limits are settings too
(``queue.<name>.<limit>``), stored with the queue's controls (pqcore.controls).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
from typing import Any

from pqcore.config import QueueSettings
from pqcore.controls import LIMIT_FIELDS, Controls
from pqcore.driver import Session
from pqcore.exceptions import InvalidArgument

RUNTIME_REFRESH_SECONDS = 2.0
_QUEUE_SETTING = re.compile(r"queue\.([^.]+)\.(\w+)")
QUEUE_LIMITS = {key: column for key, (column, _) in LIMIT_FIELDS.items()}
QUEUE_LIMITS["rate_period"] = "rate_period"


@dataclasses.dataclass(frozen=True)
class SettingSpec:
    name: str
    kind: type  # int or float
    minimum: float
    maximum: float
    description: str
    env: str  # where its initial value comes from
    builtin: float | int  # the value when the environment says nothing
    applies_to: str  # who reads it


SPECS = {
    spec.name: spec
    for spec in [
        SettingSpec("max_attempts", int, 1, 1000, "attempts a new job gets", "PQ_MAX_ATTEMPTS",
                    QueueSettings.max_attempts, "producers"),
        SettingSpec("backoff_base_seconds", float, 0, 86_400, "first retry delay (doubles)",
                    "PQ_BACKOFF_BASE_SECONDS", QueueSettings.backoff_base_seconds, "consumers"),
        SettingSpec("backoff_cap_seconds", float, 0, 7 * 86_400, "longest retry delay",
                    "PQ_BACKOFF_CAP_SECONDS", QueueSettings.backoff_cap_seconds, "consumers"),
        SettingSpec("lease_seconds", float, 1, 86_400,
                    "lease of a claim that names none (heartbeats extend it)",
                    "PQ_LEASE_SECONDS", QueueSettings.lease_seconds, "consumers"),
        SettingSpec("stall_timeout", float, 1, 30 * 86_400,
                    "processing longer than this is taken back", "PQ_STALL_TIMEOUT", 3600.0,
                    "manager"),
        SettingSpec("consumer_timeout", float, 1, 86_400,
                    "heartbeat silence before a consumer is declared dead",
                    "PQ_CONSUMER_TIMEOUT", 90.0, "manager"),
        SettingSpec("retention", float, 0, 3650 * 86_400,
                    "purge done jobs finished longer ago (0 keeps them)", "PQ_RETENTION", 0.0,
                    "manager"),
        SettingSpec("oldest_pending_threshold", float, 0, 30 * 86_400,
                    "alert when a runnable job waited longer (0: off)",
                    "PQ_OLDEST_PENDING_THRESHOLD", 600.0, "manager"),
        SettingSpec("misfire_grace", float, 1, 3600,
                    "periodic jobs: a tick later than this was missed (catch-up policy)",
                    "PQ_MISFIRE_GRACE", 60.0, "manager"),
        SettingSpec("backlog_threshold", int, 0, 1_000_000_000,
                    "alert when more jobs are pending (0: off)", "PQ_BACKLOG_THRESHOLD", 1000,
                    "manager"),
    ]
}  # fmt: skip
QUEUE_SETTING_FIELDS = frozenset({"max_attempts", "backoff_base_seconds", "backoff_cap_seconds"})
QUEUE_SETTING_FIELDS |= {"lease_seconds"}


@dataclasses.dataclass(frozen=True)
class RuntimeSetting:
    """A setting as ``pq config`` shows it: its value and where that value came from."""

    name: str
    value: Any
    default: Any  # what the environment (or pq's built-in default) says
    source: str  # "database", "environment" or "default"
    description: str
    updated_at: float | None
    updated_by: str | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_value(spec: SettingSpec, value: object) -> int | float:
    """A value for ``spec`` from text or a number, range-checked; else InvalidArgument."""
    what = "a whole number" if spec.kind is int else "a number"
    if isinstance(value, str):
        try:
            value = spec.kind(value.strip())
        except ValueError:
            raise InvalidArgument(f"{spec.name} must be {what}, not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{spec.name} must be {what}, not {value!r}")
    if spec.kind is int and not float(value).is_integer():
        raise InvalidArgument(f"{spec.name} must be {what}, not {value!r}")
    if not math.isfinite(value) or not spec.minimum <= value <= spec.maximum:
        raise InvalidArgument(
            f"{spec.name} must be from {spec.minimum:g} to {spec.maximum:g}, not {value!r}"
        )
    return spec.kind(value)  # type: ignore[no-any-return]


class RuntimeSettings(Controls):
    _runtime_cache: tuple[float, dict[str, Any]] | None = None
    _effective_settings: QueueSettings | None = None
    _applied_values: dict[str, Any] | None = None  # the overrides it was built from

    # ---------------------------------------------------------------- reading

    def config_list(self) -> list[RuntimeSetting]:
        """Every setting with its effective value, then every queue limit that is set."""
        rows = {r["name"]: r for r in self.driver.read(lambda s: s.all("settings_all"))}
        listed = [self._describe(spec, rows.get(name)) for name, spec in SPECS.items()]
        for queue, control in sorted(self.controls().items()):
            for key, column in QUEUE_LIMITS.items():
                value = getattr(control, column)
                if value is not None:
                    listed.append(
                        RuntimeSetting(
                            f"queue.{queue}.{key}", value, None, "database",
                            f"queue {queue!r}: {key.replace('_', ' ')} limit",
                            control.updated_at, control.updated_by,
                        )
                    )  # fmt: skip
        return listed

    def config_get(self, name: str) -> RuntimeSetting:
        queue_limit = _QUEUE_SETTING.fullmatch(name)
        if queue_limit:
            queue, key = self._queue_limit(name, queue_limit)
            control = self.controls().get(queue)
            value = getattr(control, QUEUE_LIMITS[key]) if control else None
            return RuntimeSetting(
                name, value, None, "database" if value is not None else "default",
                f"queue {queue!r}: {key.replace('_', ' ')} limit",
                control.updated_at if control else None, control.updated_by if control else None,
            )  # fmt: skip
        spec = self._spec(name)
        row = self.driver.read(lambda s: s.one("setting_get", {"name": name}))
        return self._describe(spec, row)

    def runtime_value(self, name: str, default: Any = None) -> Any:
        """The value an operator set for ``name``, else ``default`` (the caller's own
        environment/flag value), else the environment's. Re-read every few seconds;
        call it outside transactions."""
        self._spec(name)
        overrides = self._runtime_overrides()
        if name in overrides:
            return overrides[name]
        return default if default is not None else self._environment_value(SPECS[name])[0]

    # ---------------------------------------------------------------- changing

    def config_set(self, name: str, value: str | int | float, *, actor: str) -> RuntimeSetting:
        """Validate and store ``value``; a bad one raises InvalidArgument, nothing changes."""
        queue_limit = _QUEUE_SETTING.fullmatch(name)
        if queue_limit:
            queue, key = self._queue_limit(name, queue_limit)
            parsed = _parse_limit(key, value)
            self.set_limits(queue, actor=actor, **{key: parsed})  # type: ignore[arg-type]
            return self.config_get(name)
        spec = self._spec(name)
        parsed = parse_value(spec, value)
        self._check_together(name, parsed)

        def body(session: Session) -> None:
            old = session.one("setting_get", {"name": name})
            now = self._now()
            session.run(
                "setting_upsert",
                {"name": name, "value": json.dumps(parsed), "now": now, "actor": actor},
            )
            self._audit(
                session, actor=actor, action="config_set", target=f"setting:{name}",
                old=json.loads(old["value"]) if old else None, new=parsed, now=now,
            )  # fmt: skip

        self.driver.write(body)
        self._runtime_cache = None
        return self.config_get(name)

    def config_reset(self, name: str, *, actor: str) -> RuntimeSetting:
        """Back to the environment's value (for a queue limit: no limit)."""
        queue_limit = _QUEUE_SETTING.fullmatch(name)
        if queue_limit:
            queue, key = self._queue_limit(name, queue_limit)
            self.set_limits(queue, actor=actor, **{key: None})
            return self.config_get(name)
        self._spec(name)

        def body(session: Session) -> None:
            old = session.one("setting_get", {"name": name})
            if old is None:
                return
            now = self._now()
            session.run("setting_delete", {"name": name})
            self._audit(
                session, actor=actor, action="config_reset", target=f"setting:{name}",
                old=json.loads(old["value"]), new=None, now=now,
            )  # fmt: skip

        self.driver.write(body)
        self._runtime_cache = None
        return self.config_get(name)

    # ---------------------------------------------------------------- the queue's own

    def _refresh_runtime(self) -> QueueSettings:
        """The queue settings with operators' overrides applied; reads the database at
        most every few seconds. Call outside a transaction; inside one use
        ``_current_settings``."""
        overrides = self._runtime_overrides()
        values = {k: v for k, v in overrides.items() if k in QUEUE_SETTING_FIELDS}
        if self._effective_settings is None or values != self._applied_values:
            try:
                current = dataclasses.replace(self.settings, **values)
            except InvalidArgument:  # e.g. a cap set below a base set elsewhere: keep going
                current = self.settings
            self._effective_settings = current
            self._applied_values = values
        return self._effective_settings

    def _current_settings(self) -> QueueSettings:
        return self._effective_settings or self.settings

    def _runtime_overrides(self) -> dict[str, Any]:
        cached = self._runtime_cache
        if cached is None or time.monotonic() >= cached[0]:
            rows = self.driver.read(lambda s: s.all("settings_all"))
            values = {r["name"]: json.loads(r["value"]) for r in rows if r["name"] in SPECS}
            cached = (time.monotonic() + RUNTIME_REFRESH_SECONDS, values)
            self._runtime_cache = cached
        return cached[1]

    # ---------------------------------------------------------------- helpers

    def _describe(self, spec: SettingSpec, row: Any) -> RuntimeSetting:
        default, source = self._environment_value(spec)
        if row is not None:
            value = json.loads(row["value"])
            return RuntimeSetting(
                spec.name, value, default, "database", spec.description,
                row["updated_at"], row["updated_by"],
            )  # fmt: skip
        return RuntimeSetting(spec.name, default, default, source, spec.description, None, None)

    def _environment_value(self, spec: SettingSpec) -> tuple[Any, str]:
        if spec.name in QUEUE_SETTING_FIELDS:  # the queue's settings came from PQ_* already
            value = getattr(self.settings, spec.name)
            return value, "default" if value == spec.builtin else "environment"
        raw = os.environ.get(spec.env, "")
        if raw:
            try:
                return parse_value(spec, raw), "environment"
            except InvalidArgument:
                pass  # the service that reads it reports the bad variable
        return spec.builtin, "default"

    @staticmethod
    def _spec(name: str) -> SettingSpec:
        try:
            return SPECS[name]
        except KeyError:
            names = ", ".join(SPECS)
            raise InvalidArgument(
                f"unknown setting {name!r}; settings: {names}, queue.<name>.<limit>"
            ) from None

    def _check_together(self, name: str, value: int | float) -> None:
        """Settings that must agree with another one."""
        if name in {"backoff_base_seconds", "backoff_cap_seconds"}:
            base = (
                value if name == "backoff_base_seconds" else self._value_now("backoff_base_seconds")
            )
            cap = value if name == "backoff_cap_seconds" else self._value_now("backoff_cap_seconds")
            if base > cap:
                raise InvalidArgument(
                    f"backoff_base_seconds ({base:g}) must not exceed backoff_cap_seconds ({cap:g})"
                )

    def _value_now(self, name: str) -> Any:
        return self.config_get(name).value

    @staticmethod
    def _queue_limit(name: str, match: re.Match[str]) -> tuple[str, str]:
        queue, key = match.group(1), match.group(2)
        if key not in QUEUE_LIMITS:
            raise InvalidArgument(
                f"unknown queue setting {name!r}; a queue has: {', '.join(QUEUE_LIMITS)}"
            )
        return queue, key


def _parse_limit(key: str, value: str | int | float) -> int | float | None:
    if isinstance(value, str):
        text = value.strip().lower()
        if text in {"none", "off", "unlimited", ""}:
            return None
        try:
            return float(text) if key == "rate_period" else int(text)
        except ValueError:
            what = "a number of seconds" if key == "rate_period" else "a whole number"
            raise InvalidArgument(f"{key} must be {what} or 'none', not {value!r}") from None
    return value
