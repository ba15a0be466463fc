"""``pq pause|resume|limit|config``: the commands users type, and their refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pqcore import open_queue
from tests.cli.test_pq_command import fails, ok, pq


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "queue.db"
    ok(path, "enqueue", "a.job", "--queue", "email", "--concurrency-key", "customer-7")
    return path


def test_pause_limit_config_resume_round_trip(db: Path) -> None:
    assert "paused" in ok(db, "pause", "email", "--actor", "alice", "--reason", "outage")
    assert "paused queues: email" in ok(db, "stats")
    assert json.loads(ok(db, "stats", "--json"))["paused_queues"] == ["email"]
    shown = ok(db, "limit", "email", "--concurrency", "2", "--rate", "100/min")
    assert "at most 2 processing" in shown and "100 claims per 60s" in shown
    ok(db, "config", "set", "max_attempts", "3", "--actor", "alice")
    got = json.loads(ok(db, "config", "get", "max_attempts", "--json"))
    assert (got["value"], got["source"], got["updated_by"]) == (3, "database", "alice")
    listed = {s["name"]: s for s in json.loads(ok(db, "config", "list", "--json"))}
    assert listed["queue.email.concurrency"]["value"] == 2
    ok(db, "resume", "email", "--actor", "bob")
    assert "running, at most 2 processing" in ok(db, "limit", "email", "--concurrency", "2")
    assert "no limits" in ok(db, "limit", "email", "--concurrency", "none", "--rate", "none")
    with open_queue(str(db)) as queue:
        assert queue.get(1).concurrency_key == "customer-7"
        actions = [e.action for e in queue.audit_log()]
    assert actions[-2:] == ["set_limits", "pause"] and "config_set" in actions


@pytest.mark.parametrize(
    "args, words",
    [
        (["pause", "emial"], ["unknown queue 'emial'", "email"]),
        (["resume", "nosuch"], ["unknown queue 'nosuch'"]),
        (["limit", "email", "--concurrency", "-1"], ["concurrency limit must be from 0"]),
        (["limit", "email", "--concurrency", "many"], ["--concurrency must be a whole number"]),
        (["limit", "email", "--rate", "5/fortnight"], ["--rate must look like"]),
        (["config", "set", "max_attempts", "three"], ["max_attempts must be a whole number"]),
        (["config", "set", "lease_seconds", "-5"], ["lease_seconds must be from 1"]),
        (["config", "get", "colour"], ["unknown setting 'colour'"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    db: Path, args: list[str], words: list[str]
) -> None:
    result = pq(db, *args)
    assert result.returncode == 2
    fails(result, *words)
    with open_queue(str(db)) as queue:
        assert queue.controls() == {} and queue.audit_log() == []
