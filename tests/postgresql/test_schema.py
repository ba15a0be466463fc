"""A freshly migrated PostgreSQL database has the schema the code declares, column for
column the same as SQLite's, and concurrent migrators apply each migration once."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from pqcore import Consumer, Job, JobEvent, JobState, open_queue
from pqcore.exceptions import SchemaTooNew
from pqcore.sql import load_migrations

# Every index the PostgreSQL migrations declare, by table. SQLite has the same ones.
PG_INDEXES = {
    "jobs": {"jobs_pkey", "jobs_claim", "jobs_claim_any", "jobs_lease", "jobs_retry",
             "jobs_status_id", "jobs_dedupe", "jobs_processing_queue", "jobs_waiting",
             "jobs_by_priority", "jobs_by_run_at", "jobs_by_updated_at", "jobs_by_attempts"},
    "job_events": {"job_events_pkey", "job_events_job", "job_events_at"},
    "consumers": {"consumers_pkey"},
    "leadership": {"leadership_pkey"},
    "job_dependencies": {"job_dependencies_pkey", "job_dependencies_on",
                         "job_dependencies_open"},
    "queue_controls": {"queue_controls_pkey"},
    "claim_log": {"claim_log_queue_at"},
    "settings": {"settings_pkey"},
    "audit_log": {"audit_log_pkey", "audit_log_target"},
    "schedules": {"schedules_pkey"},
}  # fmt: skip
MODEL_OF = {"jobs": Job, "job_events": JobEvent, "consumers": Consumer}
# Set by every transition for the history triggers (migration 0003), not Job fields.
PLUMBING = {"jobs": ["last_action", "last_actor", "last_detail"]}


def pg_columns(conn: psycopg.Connection[tuple[object, ...]], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
        [table],
    ).fetchall()
    return [str(r[0]) for r in rows]


def sqlite_schema(tmp_path: Path) -> tuple[dict[str, list[str]], set[str]]:
    open_queue(str(tmp_path / "q.db")).close()
    with sqlite3.connect(tmp_path / "q.db") as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )]  # fmt: skip
        columns = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in tables}
        indexes = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )}  # fmt: skip
    return columns, indexes


def test_fresh_database_has_the_declared_schema(pg_url: str, tmp_path: Path) -> None:
    open_queue(pg_url).close()
    sqlite_columns, sqlite_indexes = sqlite_schema(tmp_path)
    with psycopg.connect(pg_url) as conn:
        for table, declared in PG_INDEXES.items():
            found = {r[0] for r in conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND tablename = %s",
                [table],
            )}  # fmt: skip
            assert found == declared, table
            columns = pg_columns(conn, table)
            assert columns == sqlite_columns[table], f"{table} differs from SQLite"
            if table in MODEL_OF:
                model = [f.name for f in dataclasses.fields(MODEL_OF[table])]
                plumbing = PLUMBING.get(table, [])
                assert [c for c in columns if c not in plumbing] == model
                assert set(plumbing) <= set(columns)
        states = [r[0] for r in conn.execute("SELECT unnest(enum_range(NULL::pq_job_state))")]
        assert states == [s.value for s in JobState]
        versions = conn.execute("SELECT version, name FROM pq_schema_version").fetchall()
        assert versions == [(v, name) for v, name, _ in load_migrations("postgresql")]
    secondary_pg = set().union(*PG_INDEXES.values()) - {f"{t}_pkey" for t in PG_INDEXES}
    assert sqlite_indexes == secondary_pg


def test_the_status_column_refuses_unknown_states(pg_url: str) -> None:
    open_queue(pg_url).close()
    with (
        psycopg.connect(pg_url) as conn,
        pytest.raises(psycopg.errors.InvalidTextRepresentation),
    ):
        conn.execute(
            "INSERT INTO jobs (data, status, run_at, max_attempts, created_at, updated_at)"
            " VALUES ('x', 'finished', 0, 1, 0, 0)"
        )


def test_concurrent_migrators_apply_each_migration_once(pg_url: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_and_close() -> None:
        try:
            start.wait(timeout=30)
            open_queue(pg_url).close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_and_close) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with psycopg.connect(pg_url) as conn:
        count = conn.execute("SELECT count(*) FROM pq_schema_version").fetchone()
    assert count == (len(load_migrations("postgresql")),)


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    open_queue(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO pq_schema_version (version, name) VALUES (999, 'future')")
    with pytest.raises(SchemaTooNew, match="version 999"):
        open_queue(pg_url)


class NullForEveryName(dict):  # type: ignore[type-arg]
    """Binds NULL to every named parameter, so any query can be prepared."""

    def __missing__(self, key: str) -> None:
        return None


def test_every_named_query_prepares_on_a_fresh_database(pg_url: str) -> None:
    from pqcore.drivers.postgresql import QUERIES

    open_queue(pg_url).close()
    failures = {}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for name, statement in sorted(QUERIES.items()):
            try:  # EXPLAIN plans without running; a NULL for each parameter
                with conn.transaction(force_rollback=True):
                    conn.execute(b"EXPLAIN " + statement, NullForEveryName())
            except psycopg.Error as error:
                failures[name] = str(error).splitlines()[0]
    assert failures == {}
