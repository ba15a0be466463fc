"""`pq schedule add|list|remove|pause|resume`, run as a subprocess the way a person runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pqcore import open_queue
from tests.cli.test_pq_command import fails, ok, pq


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


def listed(db: Path) -> list[dict[str, object]]:
    schedules: list[dict[str, object]] = json.loads(ok(db, "schedule", "list", "--json"))[
        "schedules"
    ]
    return schedules


def test_add_list_pause_resume_remove(db: Path) -> None:
    open_queue(str(db)).close()
    assert "no schedules" in ok(db, "schedule", "list")
    out = ok(db, "schedule", "add", "nightly", "--cron", "30 2 * * *", "--timezone",
             "Europe/Berlin", "--data", "reports/nightly", "--queue", "reports", "--priority",
             "4", "--catch-up", "all", "--catch-up-limit", "3", "--max-attempts", "2",
             "--actor", "alice")  # fmt: skip
    assert out.startswith("schedule nightly added; next run ")
    [shown] = listed(db)
    assert {k: shown[k] for k in ("name", "cron", "timezone", "data", "queue", "priority",
                                  "catch_up", "catch_up_limit", "max_attempts", "paused",
                                  "created_by")} == {
        "name": "nightly", "cron": "30 2 * * *", "timezone": "Europe/Berlin",
        "data": "reports/nightly", "queue": "reports", "priority": 4, "catch_up": "all",
        "catch_up_limit": 3, "max_attempts": 2, "paused": False, "created_by": "alice",
    }  # fmt: skip
    assert isinstance(shown["next_run_at"], float)
    table = ok(db, "schedule", "list")
    assert "nightly" in table and "Europe/Berlin" in table and "running" in table

    assert ok(db, "schedule", "pause", "nightly", "--actor", "bob").strip() == (
        "schedule nightly is paused"
    )
    [shown] = listed(db)
    assert shown["paused"] is True and shown["next_run_at"] is None
    assert "paused" in ok(db, "schedule", "list")
    assert "running, next run" in ok(db, "schedule", "resume", "nightly", "--actor", "carol")
    assert ok(db, "schedule", "remove", "nightly", "--actor", "dave").strip() == (
        "schedule nightly removed"
    )
    assert listed(db) == []
    with open_queue(str(db)) as queue:
        trail = [(e.action, e.actor) for e in reversed(queue.audit_log(target="schedule:nightly"))]
    assert trail == [
        ("schedule_add", "alice"),
        ("schedule_pause", "bob"),
        ("schedule_resume", "carol"),
        ("schedule_remove", "dave"),
    ]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--cron", "61 * * * *"], ["invalid cron expression '61 * * * *'"]),
        (["--cron", "every day"], ["invalid cron expression"]),
        (["--cron", "0 0 31 2 *"], ["never fires"]),
        (["--timezone", "Mars/Olympus"], ["unknown timezone 'Mars/Olympus'"]),
        (["--catch-up-limit", "-1"], ["catch-up limit", "-1"]),
        (["--catch-up", "most"], ["--catch-up", "invalid choice"]),
        (["--priority", "lots"], ["--priority", "invalid int value"]),
        (["--data", " "], ["payload is empty"]),
        (["--queue", "no spaces"], ["invalid queue name"]),
        (["--name", "taken"], ["schedule 'taken' already exists"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    db: Path, args: list[str], words: list[str]
) -> None:
    ok(db, "schedule", "add", "taken", "--cron", "@hourly", "--data", "x")
    before = listed(db)
    name = "new"
    if args[0] == "--name":
        name, args = args[1], []
    options = {"--cron": "* * * * *", "--data": "x"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        options[flag] = value
    flat = [part for pair in options.items() for part in pair]
    result = pq(db, "schedule", "add", name, *flat)
    fails(result, *words)
    assert result.returncode == 2
    assert listed(db) == before
    with open_queue(str(db)) as queue:
        assert len(queue.audit_log()) == 1  # the first add only


def test_unknown_schedule_exits_1(db: Path) -> None:
    fails(pq(db, "schedule", "list"), "no queue database")  # read-only: creates nothing
    assert not db.exists()
    open_queue(str(db)).close()
    for command in ("remove", "pause", "resume"):
        result = pq(db, "schedule", command, "nope")
        fails(result, "no schedule named 'nope'")
        assert result.returncode == 1
