"""``pq migrate-backend``: move a queue from SQLite to PostgreSQL without losing a job.

Jobs (with their results, progress and dependencies), their history and the consumer
registry are copied with their ids, in one
transaction on the target, while the source's write lock is held (so nothing changes
under the copy). Counts and id sums are compared before the target commits; on any
difference the target is rolled back and the source was never changed. Leadership is
not copied: it is a lease that the next manager takes afresh.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from pqcore import sql
from pqcore.config import QueueSettings
from pqcore.driver import Session
from pqcore.drivers.pg_listen import Connection
from pqcore.exceptions import InvalidArgument, MigrationRefused, StorageError

SOURCE = sql.load_raw("transfer_sqlite")
TARGET = sql.load_raw("transfer_postgresql")
TABLES = (
    ("jobs_all", "copy_jobs"),
    ("events_all", "copy_events"),
    ("dependencies_all", "copy_dependencies"),  # after the jobs: job_id is a foreign key
    ("consumers_all", "copy_consumers"),
    # Operators' state: pauses and limits, runtime settings, their audit trail, schedules.
    # (claim_log is left behind: the source is idle, so its rate windows are over.)
    ("controls_all", "copy_controls"),
    ("settings_all", "copy_settings"),
    ("audit_all", "copy_audit"),
    ("schedules_all", "copy_schedules"),
)


@dataclasses.dataclass(frozen=True)
class TransferReport:
    jobs: int
    events: int
    consumers: int
    statuses: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def migrate_backend(
    source: str,
    target: str,
    *,
    force: bool = False,
    settings: QueueSettings | None = None,
    clock: Callable[[], float] = time.time,
) -> TransferReport:
    """Copy the SQLite queue at ``source`` into the empty PostgreSQL queue at ``target``.

    Refuses (``MigrationRefused``) while consumers are alive or hold leases on the source,
    unless ``force``, and always when the target already holds jobs.
    """
    from pqcore.drivers.postgresql import PostgresDriver, PostgresSession
    from pqcore.drivers.sqlite import SQLiteDriver, SQLiteSession

    if not target.startswith(("postgresql://", "postgres://")):
        raise InvalidArgument(f"--to must be a postgresql:// URL, not {target!r}")
    if "://" in source and not source.startswith("sqlite://"):
        raise InvalidArgument(f"--from must be a SQLite path or sqlite:/// URL, not {source!r}")
    settings = settings or QueueSettings.from_env()
    src = SQLiteDriver(source, settings, create=False)
    try:
        dst = PostgresDriver(target, settings)
        try:

            def copy(source_session: Session) -> TransferReport:
                # Inside the source's write transaction: no producer or consumer can change
                # it until the target has committed (or rolled back).
                assert isinstance(source_session, SQLiteSession)
                reader = source_session.conn
                if not force:
                    _refuse_if_active(reader, clock(), settings.lease_seconds)

                def write(target_session: Session) -> TransferReport:
                    assert isinstance(target_session, PostgresSession)
                    return _copy(reader, target_session.conn)

                return dst.write(write)

            return src.write(copy)
        finally:
            dst.close()
    finally:
        src.close()


def _refuse_if_active(reader: sqlite3.Connection, now: float, stale_after: float) -> None:
    live = [
        r[0]
        for r in reader.execute(SOURCE["live_consumers"], {"heartbeat_after": now - stale_after})
    ]
    held = [r[0] for r in reader.execute(SOURCE["held_leases"], {"now": now})]
    if live or held:
        parts = []
        if live:
            parts.append(f"{len(live)} live consumer(s) ({', '.join(live[:5])})")
        if held:
            parts.append(f"{len(held)} job(s) under an unexpired lease ({_ids(held)})")
        raise MigrationRefused(
            "the source queue is in use: "
            + " and ".join(parts)
            + "; stop every consumer (and producer) first, or pass --force"
        )


def _copy(reader: sqlite3.Connection, writer: Connection) -> TransferReport:
    writer.execute(TARGET["lock_tables"])
    existing = writer.execute(TARGET["job_count"]).fetchone()
    if existing and existing["n"]:
        raise MigrationRefused(
            f"the target already holds {existing['n']} job(s); migrate-backend copies into an"
            " empty queue only (was this queue migrated before?)"
        )
    with writer.cursor() as cursor:
        for select, statement in TABLES:
            with cursor.copy(TARGET[statement]) as stream:
                for row in reader.execute(SOURCE[select]):
                    stream.write_row(tuple(row))
    high_water = int(reader.execute(SOURCE["job_id_high_water"]).fetchone()[0])
    source_totals = dict(reader.execute(SOURCE["totals"]).fetchone())
    writer.execute(
        TARGET["advance_job_ids"],
        {"high_water": high_water, "used": bool(high_water or source_totals["jobs"])},
    )
    writer.execute(TARGET["advance_event_ids"])
    target_totals = writer.execute(TARGET["totals"]).fetchone() or {}
    source_statuses = {r["status"]: int(r["n"]) for r in reader.execute(SOURCE["status_counts"])}
    target_statuses = {r["status"]: int(r["n"]) for r in writer.execute(TARGET["status_counts"])}
    if {k: int(v) for k, v in target_totals.items()} != {
        k: int(v) for k, v in source_totals.items()
    } or (source_statuses != target_statuses):
        raise StorageError(
            f"the copy does not match the source (source {source_totals} {source_statuses},"
            f" target {dict(target_totals)} {target_statuses}); the target was rolled back"
        )
    writer.execute(TARGET["notify_all_queues"])
    return TransferReport(
        int(source_totals["jobs"]), int(source_totals["events"]), int(source_totals["consumers"]),
        source_statuses,
    )  # fmt: skip


def _ids(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:5])
    return shown + (", ..." if len(ids) > 5 else "")


# ------------------------------------------------------------------ the command


def register(subparsers: Any) -> None:
    """The ``pq migrate-backend`` subcommand (entry point group ``pq.commands``)."""
    p = subparsers.add_parser(
        "migrate-backend",
        help="copy a SQLite queue into an empty PostgreSQL queue, keeping ids and history",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--from", dest="source", required=True, help="sqlite:///path or a path")
    p.add_argument("--to", dest="target", required=True, help="postgresql://user@host/db")
    p.add_argument("--force", action="store_true",
                   help="copy even though consumers look alive or hold leases")  # fmt: skip
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> int:
    report = migrate_backend(args.source, args.target, force=args.force)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, sort_keys=True))
        return 0
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(report.statuses.items()))
    print(f"copied {report.jobs} jobs ({statuses or 'none'}), {report.events} history rows and"
          f" {report.consumers} consumer rows; point PQ_DB at the new URL now")  # fmt: skip
    return 0
