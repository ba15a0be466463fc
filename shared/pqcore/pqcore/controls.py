"""Pausing queues and limiting them: what a claim must respect, written once for every
backend (SQL in ``sql/controls.sql``).

A queue with nothing set has no ``queue_controls`` row and is claimed by the ordinary
claim statements, which skip every queue that has one. A paused queue is claimed by
no one: it still takes enqueues, and its running jobs finish. A limited queue is
claimed here, one claimer at a time per queue (its row is locked on PostgreSQL; SQLite
has one writer anyway), so counting running jobs or recent claims and claiming within
what remains is one decision inside the claim's transaction — no check-then-claim race
across processes or hosts.

Which queues are limited is cached for ``CONTROLS_REFRESH_SECONDS`` only to decide
whether a claim needs the limited path at all; correctness never depends on it: the
ordinary claims read the table themselves, so a queue paused or limited a moment ago
is never claimed past its limit, at worst claimed a moment late.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pqcore.core import QueueCore
from pqcore.driver import Session
from pqcore.exceptions import InvalidArgument
from pqcore.models import AuditEntry, Job, QueueControl
from pqcore.validation import check_limit, check_queue

CONTROLS_REFRESH_SECONDS = 1.0
DEFAULT_RATE_PERIOD = 1.0


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()  # a limit left as it is (None clears it)

LIMIT_FIELDS = {
    "concurrency": ("concurrency_limit", 0),  # (column, smallest allowed value)
    "key_concurrency": ("key_concurrency_limit", 1),
    "rate": ("rate_limit", 0),
    "key_rate": ("key_rate_limit", 1),
}


NO_LIMITS = (
    "concurrency_limit",
    "key_concurrency_limit",
    "rate_limit",
    "key_rate_limit",
    "rate_period",
)


def check_limit_value(value: object, name: str, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(f"{name} limit must be a whole number, not {value!r}")
    if not minimum <= value <= 1_000_000:
        raise InvalidArgument(f"{name} limit must be from {minimum} to 1000000, not {value}")
    return value


def check_rate_period(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidArgument(f"rate period must be a number of seconds, not {value!r}")
    if not 0 < value <= 86_400 * 7:
        raise InvalidArgument(f"rate period must be more than 0 and at most a week, not {value}")
    return float(value)


def _row(session: Session, query: str, params: dict[str, Any]) -> Mapping[str, Any]:
    """A query that always returns one row (an aggregate)."""
    row = session.one(query, params)
    if row is None:
        raise RuntimeError(f"{query} returned no row")
    return row


class Controls(QueueCore):
    _controls_cache: tuple[float, dict[str, QueueControl]] | None = None

    # ---------------------------------------------------------------- operators

    def pause(self, name: str, *, actor: str, reason: str | None = None) -> QueueControl:
        """Stop claims from queue ``name`` (enqueues continue, running jobs finish)."""
        control = self._set_paused(name, True, actor, reason)
        assert control is not None  # the pause itself is kept
        return control

    def resume(self, name: str, *, actor: str, reason: str | None = None) -> QueueControl | None:
        """Let consumers claim from ``name`` again; returns what still holds it (limits),
        or None. Waiting consumers are woken."""
        return self._set_paused(name, False, actor, reason)

    def _set_paused(
        self, name: str, paused: bool, actor: str, reason: str | None
    ) -> QueueControl | None:
        check_queue(name)

        def body(session: Session) -> QueueControl | None:
            old = self._known_control(session, name)
            now = self._now()
            params = {"queue": name, "now": now, "actor": actor, "reason": reason}
            if paused:
                session.run("control_pause", params)
            else:
                session.run("control_resume", params)
                session.run("control_drop_if_unset", {"queue": name})
                session.notify([name])  # consumers waiting for this queue claim again
            self._audit(
                session,
                actor=actor,
                action="pause" if paused else "resume",
                target=f"queue:{name}",
                old={"paused": bool(old and old.paused)},
                new={"paused": paused},
                detail=reason,
                now=now,
            )
            kept = session.one("control_get", {"queue": name})
            return QueueControl.from_row(kept) if kept is not None else None

        control = self.driver.write(body)
        self._controls_cache = None
        return control

    def set_limits(
        self,
        name: str,
        *,
        actor: str,
        concurrency: int | _Unset | None = UNSET,
        key_concurrency: int | _Unset | None = UNSET,
        rate: int | _Unset | None = UNSET,
        key_rate: int | _Unset | None = UNSET,
        rate_period: float | _Unset | None = UNSET,
    ) -> QueueControl | None:
        """Set (an int), clear (None) or keep (left out) each limit of queue ``name``.

        A rate needs a period: ``rate_period`` seconds, kept from before or 1 s. Returns
        the queue's controls, or None when nothing holds it any more."""
        check_queue(name)
        given = {"concurrency": concurrency, "key_concurrency": key_concurrency}
        given |= {"rate": rate, "key_rate": key_rate}
        changes: dict[str, Any] = {}
        for key, value in given.items():
            column, minimum = LIMIT_FIELDS[key]
            if value is not UNSET:
                changes[column] = check_limit_value(value, key.replace("_", "-"), minimum)
        if rate_period is not UNSET:
            changes["rate_period"] = check_rate_period(rate_period)
        if not changes:
            raise InvalidArgument("name at least one limit to set or clear")

        def body(session: Session) -> QueueControl | None:
            row = session.one("control_get", {"queue": name})
            old = QueueControl.from_row(row) if row is not None else None
            limits: dict[str, Any] = old.limits() if old else dict.fromkeys(NO_LIMITS)
            limits.update(changes)
            rated = limits["rate_limit"] is not None or limits["key_rate_limit"] is not None
            if rated and limits["rate_period"] is None:
                limits["rate_period"] = DEFAULT_RATE_PERIOD
            if not rated:
                limits["rate_period"] = None
            if limits["key_rate_limit"] is not None and limits["rate_period"] is None:
                raise InvalidArgument("a per-key rate needs a rate period")
            now = self._now()
            params = {"queue": name, "now": now, "actor": actor, **limits}
            session.one("control_set_limits", params)
            session.run("control_drop_if_unset", {"queue": name})
            self._audit(
                session,
                actor=actor,
                action="set_limits",
                target=f"queue:{name}",
                old=old.limits() if old else None,
                new=limits,
                now=now,
            )
            session.notify([name])  # a raised or lifted limit may let waiting consumers claim
            kept = session.one("control_get", {"queue": name})
            return QueueControl.from_row(kept) if kept is not None else None

        control = self.driver.write(body)
        self._controls_cache = None
        return control

    def controls(self) -> dict[str, QueueControl]:
        """Every queue something holds back (paused or limited), by name."""
        rows = self.driver.read(lambda s: s.all("controls_all"))
        return {row["queue"]: QueueControl.from_row(row) for row in rows}

    def audit_log(self, *, limit: int = 100, target: str | None = None) -> list[AuditEntry]:
        """Operators' changes outside jobs' histories, newest first."""
        check_limit(limit, minimum=1)
        query = "audit_recent" if target is None else "audit_recent_for_target"
        params = {"limit": limit, "target": target}
        rows = self.driver.read(lambda s: s.all(query, params))
        return [AuditEntry.from_row(row) for row in rows]

    def _known_control(self, session: Session, name: str) -> QueueControl | None:
        """The queue's controls; an error when no job ever used the queue and nothing
        is set for it (most likely a typo)."""
        row = session.one("control_get", {"queue": name})
        if row is not None:
            return QueueControl.from_row(row)
        known = [r["queue"] for r in session.all("queue_names")]
        if name not in known:
            listed = ", ".join(known[:20]) or "none yet"
            raise InvalidArgument(f"unknown queue {name!r}; queues with jobs: {listed}")
        return None

    # ---------------------------------------------------------------- claiming

    def _cached_controls(self) -> dict[str, QueueControl]:
        cached = self._controls_cache
        if cached is None or time.monotonic() >= cached[0]:
            cached = (time.monotonic() + CONTROLS_REFRESH_SECONDS, self.controls())
            self._controls_cache = cached
        return cached[1]

    def _limited_in_scope(self, queues: Sequence[str] | None) -> list[QueueControl]:
        """Limited, unpaused queues a claim for ``queues`` (None: every queue) covers."""
        controls = self._cached_controls()
        names = controls if queues is None else [q for q in queues if q in controls]
        return [controls[q] for q in names if controls[q].limited and not controls[q].paused]

    def _slot_limited_queues(self) -> set[str]:
        """Queues whose waiting consumers a finishing job should wake (a slot frees)."""
        return {
            c.queue
            for c in self._cached_controls().values()
            if c.concurrency_limit is not None or c.key_concurrency_limit is not None
        }

    def _claim_limited(
        self, session: Session, queue: str, params: dict[str, Any], limit: int
    ) -> list[Job]:
        """Claim up to ``limit`` jobs of a limited queue within what its limits allow now."""
        row = session.one("control_lock", {"queue": queue})
        if row is None:
            return []  # lifted since the cache was read: the ordinary claim takes it now
        control = QueueControl.from_row(row)
        if control.paused:
            return []
        # The decision is made at the time the lock was granted, not when the transaction
        # began: claims then carry times in the order they took turns, and a rate window
        # read with an older time could miss claims another turn, with a later time,
        # already pruned as past (a rate limit let 6 through in 1 s in a chaos run).
        at = _row(session, "clock_after_lock", {"at": self._now()})["now"]
        params = {**params, "now": float(at)}
        allowed = self._allowance(session, control, params["now"], limit)
        if allowed <= 0:
            return []
        values = {**params, "queue": queue, "limit": allowed, **control.limits()}
        keyed = control.key_concurrency_limit is not None or control.key_rate_limit is not None
        jobs = session.jobs("claim_key_limited_queue" if keyed else "claim_limited_queue", values)
        if jobs and control.rate_period is not None:
            session.run("claim_log_record", {"now": params["now"], "ids": [j.id for j in jobs]})
        return jobs

    @staticmethod
    def _allowance(session: Session, control: QueueControl, now: float | None, want: int) -> int:
        allowed = want
        queue = control.queue
        if control.concurrency_limit is not None:
            running = _row(session, "processing_count_for_queue", {"queue": queue})
            allowed = min(allowed, control.concurrency_limit - int(running["n"]))
        if control.rate_period is not None:
            window = {"queue": queue, "now": now, "rate_period": control.rate_period}
            session.run("claim_log_prune", window)
            if control.rate_limit is not None:
                recent = _row(session, "claim_log_window", window)
                allowed = min(allowed, control.rate_limit - int(recent["n"]))
        return allowed

    def _limited_wait(
        self, session: Session, control: QueueControl, now: float | None
    ) -> float | None:
        """Seconds until a claim of this limited queue may get a job: 0 now, None when
        only a change (a job finishing, enqueued, a limit lifted) can make one, which
        wakes waiters."""
        queue = control.queue
        row = session.one("runnable_wait_for_queue", {"queue": queue, "now": now})
        if row is None or row["wait"] is None:
            return None
        due_in = float(row["wait"])
        if control.concurrency_limit is not None:
            running = _row(session, "processing_count_for_queue", {"queue": queue})
            if int(running["n"]) >= control.concurrency_limit:
                return None
        window_ends: float | None = None
        if control.rate_period is not None:
            window = {"queue": queue, "now": now, "rate_period": control.rate_period}
            recent = _row(session, "claim_log_window", window)
            if recent["oldest"] is not None:
                clock = float(now) if now is not None else self._clock_now(session)
                window_ends = max(0.0, float(recent["oldest"]) + control.rate_period - clock)
            if control.rate_limit is not None and int(recent["n"]) >= control.rate_limit:
                return max(due_in, window_ends or 0.0)
        if due_in > 0:
            return due_in
        if control.key_concurrency_limit is None and control.key_rate_limit is None:
            return 0.0
        values = {"queue": queue, "now": now, "limit": 1, **control.limits()}
        if int(_row(session, "key_limited_claimable", values)["n"]) > 0:
            return 0.0
        return window_ends  # a key's window moving on may free it; a finishing job rings

    @staticmethod
    def _clock_now(session: Session) -> float:
        return float(_row(session, "clock_now", {"now": None})["now"])
