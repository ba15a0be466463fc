"""Steps of the PostgreSQL backend that need a connection but no queue state: batch
inserts with dedupe, the claimable-job probe, job filters, and the doctor's audit."""

from __future__ import annotations

from typing import Any

from pqcore import sql
from pqcore.exceptions import DatabaseBusy, InvalidTransition
from pqcore.models import Job, JobFilter
from pqcore.pg_db import Connection
from pqcore.states import ALLOWED_EDGES, JobState, Transition

Q = sql.load("postgresql")


def insert_many(conn: Connection, rows: list[dict[str, Any]], actor: str, now: float) -> list[Job]:
    params = {
        "queues": [r["queue"] for r in rows],
        "datas": [r["data"] for r in rows],
        "priorities": [r["priority"] for r in rows],
        "run_ats": [r["run_at"] for r in rows],
        "max_attempts": [r["max_attempts"] for r in rows],
        "now": now,
        "actor": actor,
    }
    return [Job.from_row(r) for r in conn.execute(Q["jobs_insert"], params).fetchall()]


def insert_deduped(conn: Connection, values: dict[str, Any], actor: str) -> Job:
    """Insert a job unless an active job holds its dedupe key; then return that one.
    Races with a concurrent enqueue of the same key end in one job either way."""
    for _ in range(3):  # the holder may finish between our insert and our read
        # Looking first spares an id: a refused INSERT still uses up its sequence value.
        row = conn.execute(Q["job_by_active_dedupe_key"], values).fetchone()
        if row is None:
            row = conn.execute(Q["job_insert_deduped"], {**values, "actor": actor}).fetchone()
        if row is not None:
            return Job.from_row(row)
    raise DatabaseBusy(
        f"dedupe key {values['dedupe_key']!r} kept changing hands; nothing was enqueued, try again"
    )


def refuse_taken_dedupe_key(conn: Connection, job: Job, transition: Transition) -> None:
    """A resubmitted job would become active again: not while another active job holds
    its dedupe key (the key is unique among active jobs)."""
    if transition is not Transition.RESUBMIT or job.dedupe_key is None:
        return
    holder = conn.execute(Q["job_by_active_dedupe_key"], {"dedupe_key": job.dedupe_key}).fetchone()
    if holder is not None and holder["id"] != job.id:
        raise InvalidTransition(
            job.id, transition.value, job.status.value,
            f"cannot resubmit job {job.id}: active job {holder['id']} holds its"
            f" dedupe key {job.dedupe_key!r}",
        )  # fmt: skip


def next_run_at(conn: Connection, queues: list[str] | None, now: float) -> float | None:
    """``now`` if a job is runnable, else when the next pending job comes due (or None)."""
    if queues is None:
        if conn.execute(Q["runnable_exists_any_queue"], {"now": now}).fetchone():
            return now
        row = conn.execute(Q["next_run_at_any_queue"]).fetchone()
    else:
        params = {"now": now, "queues": queues}
        if conn.execute(Q["runnable_exists_in_queues"], params).fetchone():
            return now
        row = conn.execute(Q["next_run_at_in_queues"], params).fetchone()
    return None if row is None or row["run_at"] is None else float(row["run_at"])


def filter_sql(flt: JobFilter) -> tuple[list[str], dict[str, Any]]:
    """WHERE fragments (fixed text) and their parameters for a job filter."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if len(flt.statuses) == 1:
        where.append("status = %(status)s")  # lets the planner walk (status, id) in order
        params["status"] = JobState(flt.statuses[0]).value
    elif flt.statuses:
        where.append("status = ANY(%(statuses)s::pq_job_state[])")
        params["statuses"] = [JobState(s).value for s in flt.statuses]
    if flt.queue is not None:
        where.append("queue = %(queue)s")
        params["queue"] = flt.queue
    if flt.text:
        escaped = flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append("(data LIKE %(text)s ESCAPE '\\' OR error LIKE %(text)s ESCAPE '\\')")
        params["text"] = f"%{escaped}%"
    if flt.created_after is not None:
        where.append("created_at >= %(created_after)s")
        params["created_after"] = float(flt.created_after)
    if flt.created_before is not None:
        where.append("created_at < %(created_before)s")
        params["created_before"] = float(flt.created_before)
    if not where:
        where.append("true")
    return where, params


def audit(conn: Connection) -> list[str]:
    problems: list[str] = []

    def rows(name: str) -> list[dict[str, Any]]:
        return conn.execute(Q[name]).fetchall()

    for r in rows("audit_completed_twice"):
        problems.append(f"job {r['job_id']} was completed {r['n']} times")
    for r in rows("audit_done_without_event"):
        problems.append(f"job {r['id']} is done but its history has no completion")
    for r in rows("audit_status_differs_from_history"):
        problems.append(f"job {r['id']} is {r['status']} but its history ends in {r['last']}")
    for r in rows("audit_job_without_history"):
        problems.append(f"job {r['id']} has no history")
    for r in rows("audit_lease_mismatch"):
        problems.append(f"job {r['id']} is {r['status']} with an inconsistent lease")
    for r in rows("audit_counts"):
        problems.append(
            f"count of {r['status']} jobs in queue {r['queue']} is {r['counted']},"
            f" actually {r['actual']}"
        )
    for r in rows("audit_edges"):
        source, dest = r["from_status"], r["to_status"]
        edge = (JobState(source) if source else None, JobState(dest))
        if edge not in ALLOWED_EDGES:
            problems.append(f"history holds a transition {source} -> {dest} not allowed")
    for r in rows("audit_active_dedupe_duplicates"):
        problems.append(f"dedupe key {r['dedupe_key']!r} is held by {r['n']} active jobs")
    return problems
