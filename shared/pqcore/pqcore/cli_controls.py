"""``pq pause``, ``pq resume``, ``pq limit`` and ``pq config``: steering queues and
runtime settings from a shell (pqcore.controls, pqcore.runtime)."""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

from pqcore.exceptions import InvalidArgument
from pqcore.models import QueueControl
from pqcore.validation import default_actor

_RATE = re.compile(r"\s*(\d+)\s*(?:/\s*(\d*\.?\d*)\s*(s|sec|second|m|min|minute|h|hour)?\s*)?")
_UNIT_SECONDS = {None: 1.0, "s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0}
_UNIT_SECONDS |= {"minute": 60.0, "h": 3600.0, "hour": 3600.0}
_CLEAR = {"none", "off", "unlimited"}


def register(sub: Any) -> None:
    for name, helptext in (
        ("pause", "stop consumers claiming from a queue (enqueues continue)"),
        ("resume", "let consumers claim from a paused queue again"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("queue")
        p.add_argument("--reason", default=None)
        p.add_argument("--actor", default=None, help="operator name (default: the OS user)")
        p.set_defaults(func=cmd_pause if name == "pause" else cmd_resume)

    p = sub.add_parser(
        "limit",
        help="limit a queue across every consumer: jobs running at once, claims per period",
        description="Without options, show the queue's limits. 'none' lifts a limit.",
    )
    p.add_argument("queue")
    p.add_argument("--concurrency", metavar="N", help="jobs of the queue processing at once")
    p.add_argument(
        "--key-concurrency", metavar="N", help="... per concurrency key (e.g. 1 per customer)"
    )
    p.add_argument("--rate", metavar="N[/PERIOD]", help="claims per period: 100/min, 5/s, 10/30s")
    p.add_argument("--key-rate", metavar="N", help="claims per period per concurrency key")
    p.add_argument("--actor", default=None)
    p.set_defaults(func=cmd_limit)

    p = sub.add_parser("config", help="runtime settings: list, get, set, reset")
    config = p.add_subparsers(title="actions", metavar="ACTION")
    c = config.add_parser("list", help="every setting, its value and where it comes from")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_config_list)
    c = config.add_parser("get", help="one setting")
    c.add_argument("name")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_config_get)
    c = config.add_parser("set", help="change a setting (running services pick it up)")
    c.add_argument("name")
    c.add_argument("value")
    c.add_argument("--actor", default=None)
    c.set_defaults(func=cmd_config_set)
    c = config.add_parser("reset", help="back to the environment's value")
    c.add_argument("name")
    c.add_argument("--actor", default=None)
    c.set_defaults(func=cmd_config_reset)


def _actor(args: argparse.Namespace) -> str:
    return str(args.actor or os.environ.get("PQ_ACTOR") or default_actor())


def _queue(args: argparse.Namespace) -> Any:
    from pqcore.cli import queue_from_args

    return queue_from_args(args, create=False)


def cmd_pause(args: argparse.Namespace) -> int:
    with _queue(args) as queue:
        queue.pause(args.queue, actor=_actor(args), reason=args.reason)
    print(f"queue {args.queue} is paused: no new claims; running jobs finish")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    with _queue(args) as queue:
        queue.resume(args.queue, actor=_actor(args), reason=args.reason)
    print(f"queue {args.queue} is running")
    return 0


def parse_count(text: str | None, option: str) -> int | None:
    assert text is not None
    if text.strip().lower() in _CLEAR:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"{option} must be a whole number or 'none', not {text!r}") from None


def parse_rate(text: str) -> tuple[int | None, float | None]:
    """``100/min`` -> (100, 60.0); ``5`` -> (5, 1.0); ``none`` -> (None, None)."""
    if text.strip().lower() in _CLEAR:
        return None, None
    match = _RATE.fullmatch(text)
    if not match:
        raise InvalidArgument(f"--rate must look like 100/min, 5/s or 10/30s, not {text!r}")
    count, number, unit = match.groups()
    period = (float(number) if number else 1.0) * _UNIT_SECONDS[unit]
    return int(count), period


def cmd_limit(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    if args.concurrency is not None:
        changes["concurrency"] = parse_count(args.concurrency, "--concurrency")
    if args.key_concurrency is not None:
        changes["key_concurrency"] = parse_count(args.key_concurrency, "--key-concurrency")
    if args.rate is not None:
        changes["rate"], period = parse_rate(args.rate)
        if period is not None:
            changes["rate_period"] = period
    if args.key_rate is not None:
        changes["key_rate"] = parse_count(args.key_rate, "--key-rate")
    with _queue(args) as queue:
        if changes:
            control = queue.set_limits(args.queue, actor=_actor(args), **changes)
        else:
            control = queue.controls().get(args.queue)
    print(describe(args.queue, control))
    return 0


def describe(name: str, control: QueueControl | None) -> str:
    if control is None:
        return f"queue {name}: running, no limits"
    parts = ["paused" if control.paused else "running"]
    if control.concurrency_limit is not None:
        parts.append(f"at most {control.concurrency_limit} processing")
    if control.key_concurrency_limit is not None:
        parts.append(f"at most {control.key_concurrency_limit} processing per key")
    if control.rate_limit is not None:
        parts.append(f"at most {control.rate_limit} claims per {control.rate_period:g}s")
    if control.key_rate_limit is not None:
        parts.append(
            f"at most {control.key_rate_limit} claims per key per {control.rate_period:g}s"
        )
    return f"queue {name}: " + ", ".join(parts)


def cmd_config_list(args: argparse.Namespace) -> int:
    from pqcore.cli import _dump

    with _queue(args) as queue:
        settings = queue.config_list()
    if args.json:
        _dump([s.to_dict() for s in settings])
        return 0
    width = max(len(s.name) for s in settings)
    for s in settings:
        print(f"{s.name:<{width}}  {s.value!s:>10}  {s.source:<11}  {s.description}")
    return 0


def cmd_config_get(args: argparse.Namespace) -> int:
    from pqcore.cli import _dump

    with _queue(args) as queue:
        setting = queue.config_get(args.name)
    if args.json:
        _dump(setting.to_dict())
    else:
        by = f" (set by {setting.updated_by})" if setting.updated_by else ""
        print(f"{setting.name} = {setting.value}  [{setting.source}{by}]")
    return 0


def cmd_config_set(args: argparse.Namespace) -> int:
    with _queue(args) as queue:
        setting = queue.config_set(args.name, args.value, actor=_actor(args))
    print(f"{setting.name} = {setting.value} (running services pick it up within seconds)")
    return 0


def cmd_config_reset(args: argparse.Namespace) -> int:
    with _queue(args) as queue:
        setting = queue.config_reset(args.name, actor=_actor(args))
    print(f"{setting.name} = {setting.value} [{setting.source}]")
    return 0
