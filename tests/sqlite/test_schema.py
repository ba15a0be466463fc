"""The schema the migrations build is the one the code expects."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from pathlib import Path

import pytest

from pqcore import (
    Consumer,
    Job,
    JobCursor,
    JobEvent,
    JobFilter,
    JobOrder,
    JobState,
    open_queue,
    sql,
)
from pqcore.drivers.sqlite import QUERIES, split_statements
from pqcore.models import Dependency

# Columns a transition sets so the history triggers can write its row (migration 0003):
# plumbing of the database's, not fields of a Job.
HISTORY_COLUMNS = ["last_action", "last_actor", "last_detail"]


class AnyValue(dict):  # type: ignore[type-arg]
    """Binds NULL to every named parameter, so any query can be prepared."""

    def __missing__(self, key: str) -> None:
        return None


@pytest.fixture
def migrated(tmp_path: Path) -> sqlite3.Connection:
    path = tmp_path / "queue.db"
    open_queue(str(path)).close()
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return conn


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row["name"] for row in conn.execute(f"PRAGMA table_info({table})")]


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_every_named_query_prepares_on_a_fresh_database(
    migrated: sqlite3.Connection, name: str
) -> None:
    statement = QUERIES[name]
    migrated.execute("EXPLAIN " + statement, AnyValue()).fetchall()


def test_user_version_is_the_last_migration(migrated: sqlite3.Connection) -> None:
    migrations = sql.load_migrations("sqlite")
    assert migrated.execute("PRAGMA user_version").fetchone()[0] == migrations[-1][0]


def test_tables_match_the_models(migrated: sqlite3.Connection) -> None:
    jobs = columns(migrated, "jobs")
    model = [f.name for f in dataclasses.fields(Job)]
    assert [c for c in jobs if c not in HISTORY_COLUMNS] == model
    assert set(HISTORY_COLUMNS) <= set(jobs)
    dependency = {f.name for f in dataclasses.fields(Dependency)} - {"status"}  # a join's
    assert set(columns(migrated, "job_dependencies")) == dependency
    assert set(columns(migrated, "job_events")) == {f.name for f in dataclasses.fields(JobEvent)}
    assert set(columns(migrated, "consumers")) == {f.name for f in dataclasses.fields(Consumer)}


def test_status_check_lists_exactly_the_job_states(migrated: sqlite3.Connection) -> None:
    ddl = migrated.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs'").fetchone()[0]
    listed = re.search(r"status\s+TEXT\s+NOT NULL CHECK \(status IN\s*\(([^)]*)\)", ddl)
    assert listed, ddl
    assert set(re.findall(r"'(\w+)'", listed.group(1))) == {s.value for s in JobState}


def test_active_dedupe_index_uses_the_active_states(migrated: sqlite3.Connection) -> None:
    ddl = migrated.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs_dedupe'").fetchone()[0]
    assert set(re.findall(r"'(\w+)'", ddl)) == {"pending", "processing", "failed"}


@pytest.mark.parametrize("name", ["claim_one_queue", "claim_any_queue"])
def test_claims_use_the_claim_indexes(migrated: sqlite3.Connection, name: str) -> None:
    """Partial indexes of claimable rows only (pending, waiting for nothing): a claim
    that stopped naming their condition would scan instead, and no test would notice.
    (claim_in_queues is planned from the list it is given; on an empty table it sorts.)"""
    plan = migrated.execute("EXPLAIN QUERY PLAN " + QUERIES[name], AnyValue()).fetchall()
    assert any("jobs_claim" in row["detail"] for row in plan), [r["detail"] for r in plan]


@pytest.mark.parametrize("order", [JobOrder.PRIORITY, JobOrder.UPDATED_AT, JobOrder.ATTEMPTS])
def test_a_sorted_page_past_pending_walks_its_partial_index(
    tmp_path: Path, order: JobOrder
) -> None:
    """The three sort indexes leave pending jobs out (0007); SQLite uses one only when
    the query names its WHERE term itself, and otherwise sorts every done job, which no
    result would show."""
    with open_queue(str(tmp_path / "queue.db")) as queue:
        queue.enqueue_many([f"job {n}" for n in range(20)])
        for job in queue.claim("c1", limit=18):
            queue.complete(job.id, job.lease_token or "")
        statements: list[str] = []
        conn = queue.driver.connection()  # type: ignore[attr-defined]
        conn.set_trace_callback(statements.append)
        queue.page_jobs(JobFilter((JobState.DONE,)), order=order)
        queue.page_jobs(order=order, after=JobCursor(1, 1))
        conn.set_trace_callback(None)
        pages = [s for s in statements if s.startswith("SELECT * FROM")]
        assert len(pages) == 2, statements
        for statement in pages:
            plan = [r["detail"] for r in conn.execute("EXPLAIN QUERY PLAN " + statement)]
            assert any(f"jobs_by_{order.value}" in d for d in plan), plan


def test_reopening_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with open_queue(str(path)) as queue:
        queue.enqueue("kept")
    with open_queue(str(path)) as queue:
        assert queue.stats().total == 1 and queue.doctor() == []


def test_migrations_split_into_whole_statements() -> None:
    for _number, _name, script in sql.load_migrations("sqlite"):
        for statement in split_statements(script):
            assert sqlite3.complete_statement(statement + ";"), statement
