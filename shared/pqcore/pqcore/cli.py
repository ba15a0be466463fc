"""The ``pq`` command: enqueue, inspect and steer jobs from a shell.

Services add their own subcommands (``pq producer``, ``pq consumer``, ...) through
the ``pq.commands`` entry-point group: each entry point is a function that takes the
subparsers object and registers a parser whose ``func`` default runs the command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any, NoReturn, TextIO

from pqcore import open_queue, taskcall
from pqcore.config import QueueSettings
from pqcore.exceptions import InvalidArgument, OutcomeUnknown, PQError
from pqcore.models import EnqueueRequest, Job, JobFilter
from pqcore.queue import Queue
from pqcore.states import DependencyFailure, parse_state
from pqcore.validation import OPERATOR_ACTIONS, default_actor

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PQError as error:
        print(f"pq: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `pq list | head`
        sys.stderr.close()
        return 0


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad arguments get one line on stderr (with a pointer to --help), not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="pq", description="pq: a persistent job queue that does not lose work."
    )
    parser.add_argument(
        "--db",
        default=None,
        help="queue database: a path, sqlite:///path or postgresql://... (env PQ_DB, "
        "default var/queue.db)",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("enqueue", help="add a job (or many, from a file)")
    p.add_argument("payload", nargs="?", help="the job's payload, usually a file path")
    p.add_argument("--from-file", metavar="FILE", help="one payload per line; - for stdin")
    p.add_argument("--queue", default="default")
    p.add_argument("--priority", type=int, default=0, help="higher runs first")
    p.add_argument("--delay", type=float, default=0.0, help="seconds before it may run")
    p.add_argument("--dedupe-key", help="an active job with this key is returned instead")
    p.add_argument("--max-attempts", type=int, default=None)
    p.add_argument("--concurrency-key", help="the partition per-key limits count (pq limit)")
    p.add_argument("--after", type=int, action="append", metavar="ID", default=[],
                   help="wait until job ID is done (repeat for several)")  # fmt: skip
    p.add_argument("--on-dependency-failure", choices=[p.value for p in DependencyFailure],
                   default=DependencyFailure.CANCEL.value,
                   help="if a job it waits for fails for good or is cancelled: cancel this"
                   " one too, or run it anyway")  # fmt: skip
    p.set_defaults(func=cmd_enqueue)

    p = sub.add_parser("stats", help="counts per status and the oldest pending age")
    p.add_argument("--queue", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("list", help="list jobs, newest first")
    p.add_argument("--status", action="append", help="repeat for several")
    p.add_argument("--queue", default=None)
    p.add_argument("--search", default=None, help="text in the payload or the error")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--before", type=int, default=None, help="only jobs with a smaller id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="one job and its full history")
    p.add_argument("id", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    for name, helptext in (
        ("retry", "resubmit a failed, dead or cancelled job (fresh attempts)"),
        ("cancel", "cancel a pending, running or failed job"),
        ("mark-done", "mark a job done by hand"),
        ("mark-failed", "move a job to the dead-letter queue by hand"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("id", type=int)
        p.add_argument("--reason", default=None)
        p.add_argument("--actor", default=None, help="operator name (default: the OS user)")
        p.set_defaults(func=cmd_operator, action=name.replace("-", "_"))

    p = sub.add_parser("doctor", help="check the database and the queue's invariants")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    from pqcore import cli_controls

    cli_controls.register(sub)
    for entry in _plugin_commands():
        entry(sub)
    return parser


def _plugin_commands() -> list[Callable[[Any], None]]:
    found = []
    for entry in sorted(metadata.entry_points(group="pq.commands"), key=lambda e: e.name):
        try:
            found.append(entry.load())
        except Exception as error:  # a broken plugin must not take the whole CLI down
            print(f"pq: warning: command {entry.name!r} unavailable: {error}", file=sys.stderr)
    return found


def queue_from_args(args: argparse.Namespace, *, create: bool = True) -> Queue:
    settings = QueueSettings.from_env()
    return open_queue(args.db or settings.db, settings=settings, create=create)


# ------------------------------------------------------------------ commands


def cmd_enqueue(args: argparse.Namespace) -> int:
    if (args.payload is None) == (args.from_file is None):
        raise InvalidArgument("give either a PAYLOAD or --from-file FILE")
    options = {
        "queue": args.queue,
        "priority": args.priority,
        "delay": args.delay,
        "max_attempts": args.max_attempts,
        "concurrency_key": args.concurrency_key,
        "after": tuple(args.after),
        "on_dependency_failure": args.on_dependency_failure,
    }
    queue = queue_from_args(args)
    with queue:
        if args.payload is not None:
            try:
                job = queue.enqueue(args.payload, dedupe_key=args.dedupe_key, **options)
            except OutcomeUnknown as error:
                raise _unknown_enqueue(error, args) from None
            print(job.id)
            return 0
        if args.dedupe_key:
            raise InvalidArgument("--dedupe-key applies to one payload, not --from-file")
        payloads = _read_payloads(args.from_file)
        if not payloads:
            raise InvalidArgument(f"{args.from_file}: no payloads (one per line)")
        jobs = queue.enqueue_many([EnqueueRequest(p, **options) for p in payloads])
        for job in jobs:
            print(job.id)
    return 0


def _unknown_enqueue(error: OutcomeUnknown, args: argparse.Namespace) -> OutcomeUnknown:
    """Say what to do when the job may or may not exist: look before enqueueing again.
    (Only an unkeyed enqueue can end so: a keyed one is a transaction, retried whole.)"""
    look = shlex.join(["pq", "list", "--queue", args.queue, "--search", args.payload])
    return OutcomeUnknown(
        f"{error}; the job may exist: look with `{look}` before enqueueing it again"
        " (with --dedupe-key a repeat would be safe)"
    )


def _read_payloads(source: str) -> list[str]:
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
    except UnicodeDecodeError:
        raise InvalidArgument(f"{source}: not UTF-8 text") from None
    except OSError as error:
        raise InvalidArgument(f"cannot read {source}: {error.strerror}") from None
    return [line for line in text.splitlines() if line.strip()]


def cmd_stats(args: argparse.Namespace) -> int:
    with queue_from_args(args, create=False) as queue:
        stats = queue.stats(args.queue)
    if args.json:
        _dump(stats.to_dict())
        return 0
    width = max(len(k) for k in stats.counts)
    for status, n in stats.counts.items():
        print(f"{status:<{width}}  {n:>10}")
    print(f"{'total':<{width}}  {stats.total:>10}")
    age = "-" if stats.oldest_pending_age is None else f"{stats.oldest_pending_age:.1f}s"
    print(f"oldest pending age: {age}")
    print(f"stalled (lease expired): {stats.stalled}")
    if stats.waiting:
        print(f"waiting for dependencies: {stats.waiting} (of the pending)")
    if stats.paused_queues:
        print(f"paused queues: {', '.join(stats.paused_queues)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    statuses = tuple(parse_state(s) for s in args.status or ())
    flt = JobFilter(statuses=statuses, queue=args.queue, text=args.search)
    with queue_from_args(args, create=False) as queue:
        page = queue.list_jobs(flt, limit=args.limit, before_id=args.before)
    if args.json:
        _dump({"jobs": [j.to_dict() for j in page.jobs], "next_before": page.next_cursor})
        return 0
    _print_jobs(page.jobs, sys.stdout)
    if page.next_cursor is not None:
        print(f"(more: pq list --before {page.next_cursor})")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with queue_from_args(args, create=False) as queue:
        job = queue.get(args.id)
        events = queue.history(args.id)
        waits_for = queue.dependencies(args.id)
        waited_by = queue.dependents(args.id)
    call = _task_call(job.data)
    if args.json:
        task = None if call is None else {"name": call.task, "args": call.args,
                                           "kwargs": call.kwargs}  # fmt: skip
        _dump({"job": job.to_dict(), "task": task, "result": job.result_value(),
               "dependencies": [d.to_dict() for d in waits_for],
               "dependents": [d.to_dict() for d in waited_by],
               "history": [e.to_dict() for e in events]})  # fmt: skip
        return 0
    if call is not None:
        print(f"{'task':>17}: {call.task}")
        print(f"{'call':>17}: {call.describe(width=2000)}")
    for key, value in job.to_dict().items():
        if key.endswith("_at") and isinstance(value, float):
            value = _when(value)
        elif key == "progress" and isinstance(value, float):
            value = f"{value:.0%}"
        print(f"{key:>17}: {'' if value is None else value}")
    for title, rows, other in (("waits for", waits_for, "depends_on"),
                               ("waited for by", waited_by, "job_id")):  # fmt: skip
        if rows:
            print(f"{title}:")
        for d in rows:
            now = d.status.value if d.status else "purged"
            ended = f"ended {d.resolution.value}" if d.resolution else "open"
            print(f"  job {getattr(d, other)} ({now}; {ended}; on failure: {d.on_failure.value})")
    print("history:")
    for e in events:
        came = e.from_status.value if e.from_status else "-"
        detail = f"  {e.detail}" if e.detail else ""
        print(f"  {_when(e.at)}  {came:>18} -> {e.to_status.value:<18} {e.action:<14} "
              f"by {e.actor} (attempt {e.attempt}){detail}")  # fmt: skip
    return 0


def cmd_operator(args: argparse.Namespace) -> int:
    actor = args.actor or os.environ.get("PQ_ACTOR") or default_actor()
    with queue_from_args(args, create=False) as queue:
        job = queue.operator_action(
            OPERATOR_ACTIONS[args.action], args.id, actor=actor, reason=args.reason
        )
    print(f"job {job.id} is now {job.status.value}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    with queue_from_args(args, create=False) as queue:
        problems = queue.doctor()
        stats = queue.stats()
    if args.json:
        _dump({"ok": not problems, "problems": problems, "counts": stats.counts})
    elif problems:
        print(f"pq doctor: {len(problems)} problem(s) found:", file=sys.stderr)
        for line in problems:
            print(f"  - {line}", file=sys.stderr)
    else:
        print(f"pq doctor: ok ({stats.total} jobs checked)")
    return 1 if problems else 0


# ------------------------------------------------------------------ output


def _print_jobs(jobs: list[Job], out: TextIO) -> None:
    print(f"{'ID':>8}  {'STATUS':<18} {'QUEUE':<10} {'PRI':>4} {'ATT':>5}  {'CREATED':<19}  DATA",
          file=out)  # fmt: skip
    for j in jobs:
        data = taskcall.describe(j.data, width=60)
        data = data if len(data) <= 60 else data[:57] + "..."
        if j.waiting:
            data = f"[waits for {j.waiting_for}] {data}"
        attempts = f"{j.attempts:>2}/{j.max_attempts:<2}"
        print(f"{j.id:>8}  {j.status.value:<18} {j.queue:<10} {j.priority:>4} "
              f"{attempts}  {_when(j.created_at)}  {data}", file=out)  # fmt: skip


def _task_call(data: str) -> taskcall.TaskCall | None:
    try:
        return taskcall.decode(data)
    except InvalidArgument:
        return None


def _when(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _dump(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    sys.exit(main())
