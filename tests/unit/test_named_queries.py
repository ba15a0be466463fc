"""Every named query the code uses exists for every driver, and the SQL's state lists
come from pqcore.states."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pqcore import sql
from pqcore.states import ACTIVE_STATES, FINAL_STATES, JobState

PQCORE = Path(sql.__file__).resolve().parent.parent  # the pqcore package
DIALECTS = ("sqlite", "postgresql")
# Written per dialect, no shared version: how the final states are counted differs.
PER_DIALECT = {
    "counts_by_status",
    "counts_by_status_for_queue",
    "count_deltas_fold",
    "audit_counts",
}
# Names a driver itself runs (its bulk insert); the other dialect does without.
DIALECT_ONLY = {
    "sqlite": {"job_insert_plain", "jobs_after"},
    # ... and the caller's connection's database (connection=), Queue.wake's NOTIFY.
    "postgresql": {"jobs_insert_many", "database_identity", "pq_wake"},
}


def names_used_by_the_code() -> set[str]:
    """Every string literal passed first to a session's query primitives, plus the
    ones built by suffix (stats' ``_for_queue``) and chosen by table (transitions)."""
    used: set[str] = set()
    for path in PQCORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"all", "one", "run", "jobs", "_select", "_change", "_rescue"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                used.add(node.args[0].value)
    for base in ("counts_by_status", "oldest_runnable_pending_age", "stalled_count",
                 "waiting_count"):  # fmt: skip
        used |= {base, base + "_for_queue"}
    return used | {"job_to_pending", "job_to_failed", "job_to_final", "runnable_wait",
                   "runnable_wait_in_queues", "events_after_to_status"}  # fmt: skip


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_name_the_code_uses_exists_for_the_driver(dialect: str) -> None:
    missing = names_used_by_the_code() - sql.merged_names(dialect)
    assert missing == set()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_overrides_only_replace_shared_queries_or_are_the_drivers_own(dialect: str) -> None:
    own = set(sql.load_raw(dialect)) - sql.shared_names()
    assert own == PER_DIALECT | DIALECT_ONLY[dialect]


def test_the_sql_state_lists_are_generated_from_the_states() -> None:
    assert sql.states_sql(ACTIVE_STATES) == "('pending', 'processing', 'failed')"
    assert sql.states_sql(FINAL_STATES) == "('done', 'permanently_failed', 'cancelled')"
    raw = "\n".join((PQCORE / "sql" / f"{stem}.sql").read_text() for stem in ("queries", *DIALECTS))
    # No hand-written list of active or final states: those come from the macros.
    for states in (ACTIVE_STATES, FINAL_STATES):
        values = sorted(s.value for s in states)
        for listed in re.findall(r"IN \(([^()]*)\)", raw):
            found = sorted(re.findall(r"'(\w+)'", listed))
            assert found != values, f"hand-written state list {listed!r}: use a macro"
    assert {s.value for s in JobState} >= {s.value for s in ACTIVE_STATES | FINAL_STATES}


def test_migrations_index_dedupe_keys_among_exactly_the_active_states() -> None:
    for dialect in DIALECTS:
        script = (PQCORE / "migrations" / dialect / "0001_initial.sql").read_text()
        index = re.search(r"CREATE UNIQUE INDEX jobs_dedupe[^;]*", script)
        assert index, dialect
        assert set(re.findall(r"'(\w+)'", index.group(0))) == {s.value for s in ACTIVE_STATES}
