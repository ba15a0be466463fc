"""What a person reads: one message per event, or one digest for many of a kind.

Every message about a job names the job id, its payload, the error, the attempts
and a console link, so whoever reads it can act without opening anything else.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Sequence

from services.manager.events import EventKind, ManagerEvent

MAX_FIELD_CHARS = 2000  # a huge payload or traceback must not make a message undeliverable
DIGEST_SAMPLES = 20

# (title prefix, severity) per kind; severity is apprise's notify type.
KIND_TEXT: dict[str, tuple[str, str]] = {
    EventKind.DEAD_LETTERED: ("dead-lettered", "failure"),
    EventKind.STALLED_RECOVERED: ("stalled job recovered", "warning"),
    EventKind.CONSUMER_DEAD: ("consumer dead", "failure"),
    EventKind.OLDEST_PENDING_OVER_THRESHOLD: ("oldest pending job over threshold", "warning"),
    EventKind.BACKLOG: ("backlog", "warning"),
}
# How a digest counts its events: "37 jobs dead-lettered".
DIGEST_NOUN: dict[str, str] = {
    EventKind.DEAD_LETTERED: "jobs dead-lettered",
    EventKind.STALLED_RECOVERED: "stalled jobs recovered",
    EventKind.CONSUMER_DEAD: "consumers declared dead",
    EventKind.OLDEST_PENDING_OVER_THRESHOLD: "oldest-pending alerts",
    EventKind.BACKLOG: "backlog alerts",
}


@dataclasses.dataclass(frozen=True)
class Message:
    kind: str
    title: str
    body: str
    severity: str = "info"  # apprise notify type: info, success, warning, failure
    created: float = dataclasses.field(default_factory=time.time)


def console_link(console_url: str | None, job_id: int | None) -> str | None:
    if not console_url:
        return None
    if "{job_id}" not in console_url:
        return console_url
    if job_id is not None:
        return console_url.replace("{job_id}", str(job_id))
    base, query_mark, _ = console_url.partition("?")  # no job: the console's front page
    return base if query_mark else console_url.replace("{job_id}", "")


def event_message(event: ManagerEvent, console_url: str | None) -> Message:
    kind = str(event.kind)
    label, severity = KIND_TEXT.get(kind, (kind, "warning"))
    return Message(
        kind=kind,
        title=f"[pq] {_headline(event, label)}",
        body="\n".join(_event_lines(event, console_url)),
        severity=severity,
    )


def digest_message(
    kind: str,
    samples: Sequence[ManagerEvent],
    total: int,
    suppressed: int,
    window_seconds: float,
    console_url: str | None,
) -> Message:
    """One message for ``total`` events of ``kind`` in the window, of which ``suppressed``
    had no message of their own (``samples``: the first of those)."""
    noun = DIGEST_NOUN.get(kind, f"{kind} events")
    headline = f"{total} {noun} in the last {_duration(window_seconds)}"
    lines = [headline + "."]
    if total > suppressed:
        lines.append(f"{total - suppressed} had a message of their own; the other {suppressed}:")
    else:
        lines.append(f"The {suppressed}:")
    lines += ["- " + _one_line(event) for event in samples]
    if suppressed > len(samples):
        lines.append(f"- ... and {suppressed - len(samples)} more")
    link = console_link(console_url, None)
    if link:
        lines += ["", f"Console: {link}"]
    severity = KIND_TEXT.get(kind, (kind, "warning"))[1]
    return Message(kind=kind, title=f"[pq] {headline}", body="\n".join(lines), severity=severity)


def trial_message(console_url: str | None) -> Message:
    link = console_link(console_url, None)
    lines = [
        "This is a test message from `pq notify-test`.",
        "If you read it, pq alerts reach this channel.",
        f"Sent at {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M:%S} UTC.",
    ]
    if link:
        lines.append(f"Console: {link}")
    return Message(kind="test", title="[pq] test notification", body="\n".join(lines))


def _headline(event: ManagerEvent, label: str) -> str:
    if event.job_id is not None:
        error = _first_line(event.error)
        return f"job {event.job_id} {label}" + (f": {error}" if error else "")
    if event.kind is EventKind.CONSUMER_DEAD:
        return f"{label}: {event.consumer_id}"
    if event.kind is EventKind.OLDEST_PENDING_OVER_THRESHOLD:
        return f"{label}: waited {_duration(event.value or 0)}"
    if event.kind is EventKind.BACKLOG:
        return f"{label}: {int(event.value or 0)} jobs pending"
    return label


def _event_lines(event: ManagerEvent, console_url: str | None) -> list[str]:
    lines: list[tuple[str, object]] = []
    if event.job_id is not None:
        lines.append(("Job id", event.job_id))
        lines.append(("Payload", _clip(event.payload)))
        lines.append(("Error", _clip(event.error) or "(none recorded)"))
        attempts = event.attempts
        if attempts is not None:
            of = f" of {event.max_attempts}" if event.max_attempts else ""
            lines.append(("Attempts", f"{attempts}{of}"))
        if event.queue:
            lines.append(("Queue", event.queue))
    if event.kind is EventKind.DEAD_LETTERED and event.consumer_id:
        how = f" ({event.reason})" if event.reason else ""
        lines.append(("Dead-lettered by", f"{event.consumer_id}{how}"))
    else:
        if event.consumer_id:
            lines.append(("Consumer", event.consumer_id))
        if event.reason:
            lines.append(("Reason", event.reason))
    if event.kind is EventKind.CONSUMER_DEAD and event.value is not None:
        lines.append(("Silent for more than", _duration(event.value)))
    elif event.value is not None:
        value = (
            _duration(event.value)
            if event.kind is EventKind.OLDEST_PENDING_OVER_THRESHOLD
            else int(event.value)
        )
        limit = event.threshold or 0
        threshold = (
            _duration(limit) if event.kind is EventKind.OLDEST_PENDING_OVER_THRESHOLD else limit
        )
        lines.append(("Measured", f"{value} (threshold {threshold})"))
    if event.counts:
        lines.append(("Jobs", ", ".join(f"{k} {v}" for k, v in sorted(event.counts.items()))))
    lines.append(("When", f"{dt.datetime.fromtimestamp(event.at, dt.UTC):%Y-%m-%d %H:%M:%S} UTC"))
    link = console_link(console_url, event.job_id)
    if link:
        lines.append(("Console", link))
    return [f"{name}: {value}" for name, value in lines]


def _one_line(event: ManagerEvent) -> str:
    if event.job_id is not None:
        error = _first_line(event.error) or "no error recorded"
        attempts = f", attempts {event.attempts}" if event.attempts is not None else ""
        return f"job {event.job_id} ({_clip(event.payload, 200)}){attempts}: {error}"
    if event.consumer_id:
        return f"consumer {event.consumer_id}"
    return f"measured {event.value} (threshold {event.threshold})"


def _first_line(text: str | None) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[-1] if "Traceback" in text else text.strip().splitlines()[0]
    return _clip(line, 200) or ""


def _clip(text: str | None, limit: int = MAX_FIELD_CHARS) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds % 3600 == 0 and seconds >= 3600:
        hours = seconds // 3600
        return f"{hours} hour" + ("s" if hours != 1 else "")
    if seconds % 60 == 0 and seconds >= 60:
        minutes = seconds // 60
        return f"{minutes} minute" + ("s" if minutes != 1 else "")
    if seconds >= 120:
        return f"{seconds // 60} minutes {seconds % 60} seconds"
    return f"{seconds} second" + ("s" if seconds != 1 else "")
