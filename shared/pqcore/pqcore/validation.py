"""Checks on what callers pass in, made before anything is written: bad input raises
``InvalidArgument`` with a message that says what is wrong, and changes nothing."""

from __future__ import annotations

import getpass
import json
import math
import re
from collections.abc import Sequence
from typing import Any

from pqcore.config import QueueSettings
from pqcore.exceptions import InvalidArgument, PayloadTooLarge
from pqcore.models import EnqueueRequest
from pqcore.states import DependencyFailure, Transition

QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_DEDUPE_KEY = 1024
MAX_ERROR_TEXT = 8 * 1024
MAX_PRIORITY = 1_000_000
MAX_BATCH = 10_000
MAX_DEPENDENCIES = 10_000
MAX_PROGRESS_MESSAGE = 1024

# Operator actions by name, as the CLI and consoles offer them.
OPERATOR_ACTIONS = {
    "resubmit": Transition.RESUBMIT,
    "retry": Transition.RESUBMIT,
    "cancel": Transition.CANCEL,
    "mark_done": Transition.MARK_DONE,
    "mark_failed": Transition.MARK_FAILED,
}
OPERATOR_TRANSITIONS = frozenset(OPERATOR_ACTIONS.values())


def default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "operator"


def enqueue_values(item: str | EnqueueRequest, settings: QueueSettings) -> dict[str, Any]:
    """Check one enqueue request; returns the row values (``run_at`` when given, else
    ``delay`` from the queue's clock)."""
    request = item if isinstance(item, EnqueueRequest) else EnqueueRequest(item)
    data = request.data
    if not isinstance(data, str):
        raise InvalidArgument(f"payload must be text, not {type(data).__name__}")
    if not data.strip():
        raise InvalidArgument("payload is empty")
    if "\x00" in data:
        raise InvalidArgument("payload contains a NUL character")
    try:
        size = len(data.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidArgument("payload is not valid UTF-8 text") from None
    if size > settings.max_payload_bytes:
        raise PayloadTooLarge(
            f"payload is {size} bytes; the limit is {settings.max_payload_bytes}"
            " (PQ_MAX_PAYLOAD_BYTES)"
        )
    check_queue(request.queue)
    if isinstance(request.priority, bool) or not isinstance(request.priority, int):
        raise InvalidArgument("priority must be an integer")
    if abs(request.priority) > MAX_PRIORITY:
        raise InvalidArgument(f"priority must be between -{MAX_PRIORITY} and {MAX_PRIORITY}")
    run_at, delay = None, 0.0
    if request.run_at is not None:
        run_at = finite(request.run_at, "run_at")
    else:
        delay = finite(request.delay, "delay")
        if delay < 0:
            raise InvalidArgument("delay must not be negative")
    check_key(request.dedupe_key, "dedupe key")
    max_attempts = request.max_attempts
    if max_attempts is None:  # not `or`: an explicit 0 is an error, not the default
        max_attempts = settings.max_attempts
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
        raise InvalidArgument("max_attempts must be an integer")
    if not 1 <= max_attempts <= 1000:
        raise InvalidArgument("max_attempts must be between 1 and 1000")
    return {
        "queue": request.queue,
        "data": data,
        "priority": request.priority,
        "run_at": run_at,
        "delay": delay,
        "dedupe_key": request.dedupe_key,
        "max_attempts": max_attempts,
        "concurrency_key": check_key(request.concurrency_key, "concurrency key"),
        "waiting_for": 0,  # set from the dependencies inside the enqueue's transaction
    }


def check_after(after: object) -> tuple[int, ...]:
    """The ids of the jobs a new job waits for: ids or anything with an ``id`` (a Job, a
    task handle), each once, in the order given."""
    if after is None:
        return ()
    if isinstance(after, str | bytes) or not hasattr(after, "__iter__"):
        after = [after]
    ids: dict[int, None] = {}
    for item in after:
        ids[check_id(getattr(item, "id", item))] = None
    if len(ids) > MAX_DEPENDENCIES:
        raise InvalidArgument(f"a job may wait for at most {MAX_DEPENDENCIES} jobs, not {len(ids)}")
    return tuple(ids)


def check_dependency_failure(value: object) -> DependencyFailure:
    try:
        return DependencyFailure(str(value))
    except ValueError:
        valid = ", ".join(p.value for p in DependencyFailure)
        raise InvalidArgument(
            f"on_dependency_failure must be one of {valid}, not {value!r}"
        ) from None


def encode_json(value: object, what: str, max_bytes: int) -> str:
    """``value`` as compact JSON text, refusing what would not come back the same: only
    str, int, float (finite), bool, None, lists (tuples arrive as lists) and dicts with
    str keys; at most ``max_bytes`` of UTF-8."""
    check_json_value(value, what)
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise PayloadTooLarge(f"{what} is {size} bytes as JSON; the limit is {max_bytes}"
                              " (PQ_MAX_PAYLOAD_BYTES)")  # fmt: skip
    return text


def check_json_value(value: object, what: str, depth: int = 0) -> None:
    if depth > 100:
        raise InvalidArgument(f"{what} is nested more than 100 levels deep")
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgument(f"{what} holds {value!r}, which JSON cannot carry")
        return
    if isinstance(value, list | tuple):
        for item in value:
            check_json_value(item, what, depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgument(
                    f"{what} holds a dict key {key!r} ({type(key).__name__}): JSON keys are text"
                )
            check_json_value(item, what, depth + 1)
        return
    raise InvalidArgument(
        f"{what} holds a {type(value).__name__} ({_short(value)}), which is not JSON: pass"
        " str, int, float, bool, None, lists and dicts with str keys"
    )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_key(value: str | None, what: str) -> str | None:
    if value is not None:
        if not isinstance(value, str) or not value:
            raise InvalidArgument(f"{what} must be non-empty text")
        if len(value) > MAX_DEDUPE_KEY:
            raise InvalidArgument(f"{what} is longer than {MAX_DEDUPE_KEY} characters")
    return value


def lease_seconds(settings: QueueSettings, value: float | None) -> float:
    value = settings.lease_seconds if value is None else value
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgument("lease_seconds must be a positive number")
    return value


def check_limit(limit: int, maximum: int = MAX_BATCH, minimum: int = 0) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not minimum <= limit <= maximum:
        raise InvalidArgument(f"limit must be an integer from {minimum} to {maximum}")
    return limit


def check_queue(name: object) -> str:
    if not isinstance(name, str) or not QUEUE_NAME.match(name):
        raise InvalidArgument(f"invalid queue name {name!r}: 1-64 letters, digits or _.:-")
    return name


def check_queues(queues: Sequence[str] | None) -> list[str] | None:
    if queues is None:
        return None
    if isinstance(queues, str):
        queues = [queues]
    names = [check_queue(name) for name in dict.fromkeys(queues)]
    if not names:
        raise InvalidArgument("queues must name at least one queue")
    return names


def check_id(job_id: object) -> int:
    if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id < 1:
        raise InvalidArgument(f"job id must be a positive integer, not {job_id!r}")
    return job_id


def check_operator(transition: Transition, actor: str) -> None:
    if not isinstance(actor, str) or not actor.strip():
        raise InvalidArgument("an operator action needs the operator's name (actor)")
    if transition not in OPERATOR_TRANSITIONS:
        raise InvalidArgument(f"{transition.value} is not an operator action")


def check_consumer_id(consumer_id: object) -> None:
    if not isinstance(consumer_id, str) or not 0 < len(consumer_id) <= 200:
        raise InvalidArgument("consumer id must be 1-200 characters of text")


def check_sample(sample: object) -> int:
    if isinstance(sample, bool) or not isinstance(sample, int) or not 1 <= sample <= 1_000_000:
        raise InvalidArgument("sample must be an integer from 1 to 1000000")
    return sample


def finite(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{name} must be a number")
    if not math.isfinite(value):
        raise InvalidArgument(f"{name} must be finite")
    return float(value)


def clip_error(text: str | None) -> str | None:
    """Error texts are stored whole up to a limit; a traceback can be long."""
    if text is None:
        return None
    text = str(text)
    if len(text) > MAX_ERROR_TEXT:
        return text[: MAX_ERROR_TEXT - 20] + "... [truncated]"
    return text


def check_progress(fraction: object, message: object) -> tuple[float, str | None]:
    value = finite(fraction, "progress")
    if not 0.0 <= value <= 1.0:
        raise InvalidArgument(f"progress is a fraction from 0 to 1, not {fraction!r}")
    if message is not None:
        if not isinstance(message, str):
            raise InvalidArgument("a progress message must be text")
        if len(message) > MAX_PROGRESS_MESSAGE:
            message = message[: MAX_PROGRESS_MESSAGE - 3] + "..."
    return value, message
