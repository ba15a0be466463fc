"""Turning what a person typed into validated values for pqcore (never into SQL).

pqcore passes every value as a query parameter; these checks exist so a mistake
gets one clear message instead of an empty page or a stack trace.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from pqcore import JobFilter, JobState
from pqcore.validation import QUEUE_NAME

MAX_SEARCH = 200
TIME_RANGES: dict[str, float | None] = {
    "any time": None,
    "last 15 minutes": 15 * 60,
    "last hour": 3600,
    "last 24 hours": 86_400,
    "last 7 days": 7 * 86_400,
    "custom": None,
}
# How each range and state is spelled in a URL (?created=1h&status=dead-letter).
RANGE_SLUGS = {
    "any time": "any", "last 15 minutes": "15m", "last hour": "1h", "last 24 hours": "24h",
    "last 7 days": "7d", "custom": "custom",
}  # fmt: skip
STATE_SLUGS = {
    JobState.PENDING: "pending",
    JobState.PROCESSING: "processing",
    JobState.DONE: "done",
    JobState.FAILED: "failed",
    JobState.PERMANENTLY_FAILED: "dead-letter",
    JobState.CANCELLED: "cancelled",
}
STATE_BY_SLUG = {slug: state for state, slug in STATE_SLUGS.items()}
STATE_NAMES = {
    JobState.PENDING: "pending",
    JobState.PROCESSING: "processing",
    JobState.DONE: "done",
    JobState.FAILED: "failed (retrying)",
    JobState.PERMANENTLY_FAILED: "dead letter",
    JobState.CANCELLED: "cancelled",
}
_ID = re.compile(r"^#?\s*(\d{1,18})$")


class InputError(ValueError):
    """Input a person can correct; the message says how."""


def parse_job_id(text: str) -> int:
    match = _ID.match(text.strip())
    if not match or int(match.group(1)) < 1:
        raise InputError(f"{text.strip()[:40]!r} is not a job id (a positive whole number)")
    return int(match.group(1))


def clean_search(text: str) -> str | None:
    """Search text: trimmed, at most 200 characters, no control characters."""
    text = text.strip()
    if not text:
        return None
    if len(text) > MAX_SEARCH:
        raise InputError(f"search text is longer than {MAX_SEARCH} characters")
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise InputError("search text contains control characters")
    return text


def clean_reason(text: str) -> str | None:
    text = text.strip()
    if len(text) > 500:
        raise InputError("the reason is longer than 500 characters")
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise InputError("the reason contains control characters")
    return text or None


def states_to_url(states: list[JobState]) -> str:
    return ",".join(STATE_SLUGS[JobState(s)] for s in states)


def states_from_url(text: str) -> list[JobState]:
    """``dead-letter,failed`` -> the states; ValueError for a name that is not one."""
    return [STATE_BY_SLUG[part.strip()] for part in text.split(",") if part.strip()]


def build_filter(
    statuses: list[JobState] | list[str],
    queue: str | None,
    text: str,
    time_range: str,
    now: float,
    custom: tuple[dt.datetime | None, dt.datetime | None] = (None, None),
    error_group: str | None = None,
) -> JobFilter:
    states = tuple(JobState(s) for s in statuses)
    if queue is not None and not QUEUE_NAME.match(queue):
        raise InputError(f"invalid queue name {queue!r}")
    if time_range not in TIME_RANGES:
        raise InputError(f"unknown time range {time_range!r}")
    after = before = None
    if time_range == "custom":
        start, end = custom
        after = start.replace(tzinfo=dt.UTC).timestamp() if start else None
        before = end.replace(tzinfo=dt.UTC).timestamp() if end else None
        if after is not None and before is not None and after >= before:
            raise InputError("the time range ends before it starts")
    elif TIME_RANGES[time_range] is not None:
        after = now - float(TIME_RANGES[time_range] or 0)
    return JobFilter(
        statuses=states,
        queue=queue,
        text=clean_search(text),
        created_after=after,
        created_before=before,
        error_group=clean_pattern(error_group),
    )


def clean_pattern(text: str | None) -> str | None:
    """A failure group's pattern from a URL: at most 200 characters, no control ones."""
    if text is None or not text.strip():
        return None
    if len(text) > 200 or any(unicodedata.category(c) == "Cc" for c in text):
        raise InputError("the error pattern in the address is not one this console made")
    return text


def describe(flt: JobFilter) -> str:
    parts = []
    if flt.statuses:
        parts.append("status " + " or ".join(STATE_NAMES[JobState(s)] for s in flt.statuses))
    if flt.queue:
        parts.append(f"queue {flt.queue}")
    if flt.text:
        parts.append(f"containing {flt.text!r}")
    if flt.error_group:
        parts.append(f"error like {flt.error_group!r}")
    if flt.created_after or flt.created_before:
        parts.append("in the chosen time range")
    return ", ".join(parts) or "all jobs"


def parse_limit(text: str, name: str) -> int | None:
    """A limit typed in a box: blank is no limit; pqcore checks the range."""
    text = text.strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{name} must be a whole number, or blank for no limit") from None


def parse_seconds(text: str, name: str) -> float | None:
    """Seconds typed in a box: blank is the default; pqcore checks the range."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{name} must be a number of seconds, or blank") from None
