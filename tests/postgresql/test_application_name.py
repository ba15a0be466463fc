"""pq's PostgreSQL connections say whose they are in pg_stat_activity, so an operator
can tell a consumer's sessions from the manager's (and from everything else)."""

from __future__ import annotations

import os
import sys

import pytest

from pqcore import open_queue
from pqcore.drivers.postgresql import application_name


def _names(queue_url: str, probe_url: str) -> tuple[str, str]:
    with open_queue(queue_url) as queue:
        queue.enqueue("a")  # a pooled connection at work
        with queue.driver.connect(autocommit=True) as own:
            mine = own.execute("SHOW application_name").fetchone()
        with open_queue(probe_url) as probe, probe.driver.connect(autocommit=True) as conn:
            rows = conn.execute(
                "SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"
            ).fetchall()
    assert mine is not None
    return mine["application_name"], " | ".join(sorted(r["application_name"] for r in rows))


def test_connections_are_named_after_the_program_and_its_pid(pg_url: str) -> None:
    own, everyone = _names(pg_url, pg_url)
    expected = application_name()
    assert own == expected and expected.endswith(f" {os.getpid()}")
    assert expected in everyone  # the pooled connections too


def test_a_name_given_in_the_url_wins(pg_url: str) -> None:
    joined = pg_url + ("&" if "?" in pg_url else "?") + "application_name=billing-worker"
    own, everyone = _names(joined, pg_url)
    assert own == "billing-worker"
    assert "billing-worker" in everyone


@pytest.mark.parametrize(
    ("argv0", "expected"),
    [
        ("/srv/pq/services/consumer/__main__.py", "pq consumer"),
        ("/srv/pq/.venv/bin/pq", "pq"),
        ("/home/me/app/worker.py", "pq worker"),
        ("-c", "pq python"),
        ("", "pq python"),
    ],
)
def test_the_name_comes_from_how_the_program_was_started(
    monkeypatch: pytest.MonkeyPatch, argv0: str, expected: str
) -> None:
    monkeypatch.setattr(sys, "argv", [argv0])
    assert application_name() == f"{expected} {os.getpid()}"
