"""``pq schedule add|list|remove|pause|resume``: periodic jobs from a shell.

Registered through the ``pq.commands`` entry point group, like ``pq migrate-backend``.
Bad input (an invalid cron expression, an unknown timezone, a negative limit) is one
line on stderr and exit code 2, with nothing changed; an unknown schedule exits 1.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from pqcore.cli import _dump, _when, queue_from_args
from pqcore.schedules import CATCH_UP_POLICIES, Schedule
from pqcore.validation import default_actor


def register(subparsers: Any) -> None:
    """The ``pq schedule`` command and its subcommands."""
    top = subparsers.add_parser("schedule", help="periodic jobs: add, list, remove, pause, resume")
    top.set_defaults(func=lambda _: _usage(top))
    sub = top.add_subparsers(title="schedule commands", metavar="COMMAND")

    p = sub.add_parser("add", help="add a schedule: a job enqueued at every tick of a cron")
    p.add_argument("name")
    p.add_argument(
        "--cron",
        required=True,
        metavar="EXPR",
        help="5 fields (minute hour day month weekday), or 6 with seconds last",
    )
    p.add_argument(
        "--timezone",
        default="UTC",
        metavar="TZ",
        help="IANA name the cron is read in (default UTC)",
    )
    p.add_argument("--data", required=True, metavar="PAYLOAD", help="the payload of each job")
    p.add_argument("--queue", default="default")
    p.add_argument("--priority", type=int, default=0)
    p.add_argument(
        "--catch-up",
        choices=CATCH_UP_POLICIES,
        default="skip",
        help="ticks missed while no manager ran: skip (default), one, or all",
    )
    p.add_argument(
        "--catch-up-limit",
        type=int,
        default=100,
        metavar="N",
        help="with --catch-up all: enqueue at most the N newest missed ticks",
    )
    p.add_argument("--max-attempts", type=int, default=None)
    _actor(p)
    p.set_defaults(func=cmd_add)

    p = sub.add_parser("list", help="every schedule with its next and last run")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    for name, helptext in (
        ("remove", "delete a schedule (jobs it enqueued stay)"),
        ("pause", "stop enqueueing a schedule's ticks"),
        ("resume", "enqueue again from the next tick (ticks due while paused are skipped)"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("name")
        _actor(p)
        p.set_defaults(func=cmd_change, action=name)


def _actor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--actor", default=None, help="operator name (default: the OS user)")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _operator(args: argparse.Namespace) -> str:
    return str(args.actor or os.environ.get("PQ_ACTOR") or default_actor())


def cmd_add(args: argparse.Namespace) -> int:
    with queue_from_args(args) as queue:
        schedule = queue.add_schedule(
            args.name,
            args.cron,
            data=args.data,
            queue=args.queue,
            timezone=args.timezone,
            priority=args.priority,
            catch_up=args.catch_up,
            catch_up_limit=args.catch_up_limit,
            max_attempts=args.max_attempts,
            actor=_operator(args),
        )
    print(f"schedule {schedule.name} added; next run {_time(schedule.next_run_at)} UTC")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    with queue_from_args(args, create=False) as queue:
        schedules = queue.schedules()
    if args.json:
        _dump({"schedules": [s.to_dict() for s in schedules]})
        return 0
    _print_schedules(schedules)
    return 0


def cmd_change(args: argparse.Namespace) -> int:
    actor = _operator(args)
    with queue_from_args(args, create=False) as queue:
        if args.action == "remove":
            queue.remove_schedule(args.name, actor=actor)
            print(f"schedule {args.name} removed")
            return 0
        if args.action == "pause":
            schedule = queue.pause_schedule(args.name, actor=actor)
        else:
            schedule = queue.resume_schedule(args.name, actor=actor)
    state = "paused" if schedule.paused else f"running, next run {_time(schedule.next_run_at)} UTC"
    print(f"schedule {schedule.name} is {state}")
    return 0


def _time(epoch: float | None) -> str:
    return "-" if epoch is None else _when(epoch)


def _print_schedules(schedules: list[Schedule]) -> None:
    if not schedules:
        print("no schedules (pq schedule add NAME --cron EXPR --data PAYLOAD)")
        return
    print(f"{'NAME':<20} {'CRON':<18} {'TIMEZONE':<16} {'QUEUE':<10} {'CATCH-UP':<9} "
          f"{'STATE':<7} {'NEXT RUN (UTC)':<19}  {'LAST TICK (UTC)':<19}  {'LAST JOB':>8} "
          f"{'ENQUEUED':>8} {'SKIPPED':>8}")  # fmt: skip
    for s in schedules:
        state = "paused" if s.paused else "running"
        job = "-" if s.last_job_id is None else str(s.last_job_id)
        print(f"{s.name:<20} {s.cron:<18} {s.timezone:<16} {s.queue:<10} {s.catch_up:<9} "
              f"{state:<7} {_time(s.next_run_at):<19}  {_time(s.last_tick_at):<19}  {job:>8} "
              f"{s.ticks_enqueued:>8} {s.ticks_skipped:>8}")  # fmt: skip
