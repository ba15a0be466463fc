"""The real `pq` entry point, run as a subprocess the way a person runs it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from pqcore import open_queue
from tests.conftest import pq_command
from tests.namespaces import read_only_bind, require_mount_namespaces, run_in_namespace

STATES = {"pending", "processing", "done", "failed", "permanently_failed", "cancelled"}


def pq(db: Path | str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*pq_command(), "--db", str(db), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ok(db: Path | str, *args: str, stdin: str | None = None) -> str:
    result = pq(db, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def fails(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """A refused command: non-zero exit, exactly one line on stderr, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "queue.db"


def test_enqueue_prints_the_id_and_keeps_options(db: Path) -> None:
    first = int(ok(db, "enqueue", "jobs/0001.txt"))
    options = ["--queue", "mail", "--priority", "5", "--delay", "60", "--max-attempts", "2"]
    second = int(ok(db, "enqueue", "jobs/0002.txt", *options, "--dedupe-key", "k"))
    assert second > first
    assert int(ok(db, "enqueue", "other", "--dedupe-key", "k")) == second  # deduplicated
    shown = json.loads(ok(db, "show", str(second), "--json"))["job"]
    assert (shown["data"], shown["queue"], shown["priority"], shown["max_attempts"]) == (
        "jobs/0002.txt",
        "mail",
        5,
        2,
    )
    assert shown["run_at"] >= shown["created_at"] + 59


def test_enqueue_from_file_and_stdin(db: Path, tmp_path: Path) -> None:
    listing = tmp_path / "payloads.txt"
    listing.write_text("a.txt\nb.txt\n\n  \nc.txt\n")
    ids = [int(x) for x in ok(db, "enqueue", "--from-file", str(listing)).split()]
    assert len(ids) == 3 and ids == sorted(ids)
    more = [int(x) for x in ok(db, "enqueue", "--from-file", "-", stdin="d.txt\ne.txt\n").split()]
    assert len(more) == 2 and more[0] > ids[-1]
    with open_queue(str(db)) as queue:
        assert [queue.get(i).data for i in ids + more] == [
            "a.txt",
            "b.txt",
            "c.txt",
            "d.txt",
            "e.txt",
        ]
        # One transaction: every job of a file shares the same creation time.
        assert len({queue.get(i).created_at for i in ids}) == 1


def test_enqueue_from_file_is_all_or_nothing(db: Path, tmp_path: Path) -> None:
    ok(db, "enqueue", "before")
    listing = tmp_path / "payloads.txt"
    listing.write_text("fine\n" + "x" * 70_000 + "\nalso fine\n")
    fails(pq(db, "enqueue", "--from-file", str(listing)), "limit")
    assert json.loads(ok(db, "stats", "--json"))["total"] == 1


def test_stats_json_has_every_state(db: Path) -> None:
    ok(db, "enqueue", "a")
    stats = json.loads(ok(db, "stats", "--json"))
    assert set(stats["counts"]) == STATES
    assert stats["counts"]["pending"] == 1
    assert {"oldest_pending_age", "stalled", "dead_letter", "total"} <= set(stats)
    assert "pending" in ok(db, "stats")


def test_list_filters_and_json(db: Path) -> None:
    a = int(ok(db, "enqueue", "reports/a.csv", "--queue", "reports"))
    b = int(ok(db, "enqueue", "images/b.png", "--queue", "images"))
    c = int(ok(db, "enqueue", "images/c.png", "--queue", "images"))
    ok(db, "cancel", str(c), "--actor", "op")

    def listed(*args: str) -> list[int]:
        return [j["id"] for j in json.loads(ok(db, "list", "--json", *args))["jobs"]]

    assert listed() == [c, b, a]
    assert listed("--queue", "images") == [c, b]
    assert listed("--status", "pending") == [b, a]
    assert listed("--status", "pending", "--status", "cancelled") == [c, b, a]
    assert listed("--search", "csv") == [a]
    page = json.loads(ok(db, "list", "--json", "--limit", "2"))
    assert [j["id"] for j in page["jobs"]] == [c, b] and page["next_before"] == b
    assert listed("--before", str(b)) == [a]
    text = ok(db, "list", "--status", "pending")
    assert "images/b.png" in text and "images/c.png" not in text


def test_show_prints_the_job_and_its_history(db: Path) -> None:
    job_id = ok(db, "enqueue", "jobs/show.txt").strip()
    ok(db, "mark-failed", job_id, "--reason", "bad input", "--actor", "alice")
    text = ok(db, "show", job_id)
    assert "jobs/show.txt" in text and "history:" in text
    assert "mark_failed" in text and "alice" in text and "bad input" in text
    history = json.loads(ok(db, "show", job_id, "--json"))["history"]
    assert [(e["action"], e["actor"]) for e in history] == [
        ("enqueue", "producer"),
        ("mark_failed", "alice"),
    ]


def test_operator_commands_record_the_actor(db: Path) -> None:
    job_id = ok(db, "enqueue", "jobs/op.txt").strip()
    assert "cancelled" in ok(db, "cancel", job_id, "--actor", "bob", "--reason", "not needed")
    assert "pending" in ok(db, "retry", job_id, "--actor", "carol")
    assert "permanently_failed" in ok(db, "mark-failed", job_id, "--actor", "dave")
    assert "done" in ok(db, "mark-done", job_id, "--actor", "erin")
    history = json.loads(ok(db, "show", job_id, "--json"))["history"]
    assert [(e["action"], e["actor"]) for e in history[1:]] == [
        ("cancel", "bob"),
        ("resubmit", "carol"),
        ("mark_failed", "dave"),
        ("mark_done", "erin"),
    ]
    assert history[1]["detail"] == "not needed"
    # The default actor is the OS user, never empty.
    other = ok(db, "enqueue", "jobs/op2.txt").strip()
    ok(db, "cancel", other)
    assert json.loads(ok(db, "show", other, "--json"))["history"][-1]["actor"].strip()


def test_operator_command_from_a_wrong_state(db: Path) -> None:
    job_id = ok(db, "enqueue", "jobs/x.txt").strip()
    ok(db, "mark-done", job_id, "--actor", "op")
    fails(pq(db, "cancel", job_id, "--actor", "op"), "cannot cancel", "done")
    assert json.loads(ok(db, "show", job_id, "--json"))["job"]["status"] == "done"


def test_doctor_ok(db: Path) -> None:
    ok(db, "enqueue", "a")
    out = ok(db, "doctor")
    assert "ok" in out
    assert json.loads(ok(db, "doctor", "--json"))["ok"] is True


def test_doctor_on_a_tampered_database(db: Path) -> None:
    job_id = int(ok(db, "enqueue", "a"))
    ok(db, "enqueue", "b")
    with sqlite3.connect(db) as conn:  # tamper behind pq's back: the history vanishes
        conn.execute("DELETE FROM job_events WHERE job_id = ?", (job_id,))
    result = pq(db, "doctor")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert f"job {job_id} has no history" in result.stderr
    report = json.loads(pq(db, "doctor", "--json").stdout)
    assert report["ok"] is False and any(str(job_id) in p for p in report["problems"])


def test_unknown_id(db: Path) -> None:
    ok(db, "enqueue", "a")
    for command in ("show", "retry", "cancel", "mark-done", "mark-failed"):
        fails(pq(db, command, "424242"), "424242")


@pytest.mark.parametrize(
    "args",
    [["show", "abc"], ["enqueue", "a", "--priority", "high"], ["list", "--limit", "x"], ["nope"]],
)
def test_malformed_arguments(db: Path, args: list[str]) -> None:
    ok(db, "enqueue", "a")
    fails(pq(db, *args), "error")


def test_invalid_status(db: Path) -> None:
    ok(db, "enqueue", "a")
    fails(pq(db, "list", "--status", "exploded"), "exploded", "pending")


def test_payload_over_the_limit(db: Path) -> None:
    ok(db, "enqueue", "a")
    fails(pq(db, "enqueue", "x" * 70_000), "limit")
    assert json.loads(ok(db, "stats", "--json"))["total"] == 1


@pytest.mark.parametrize("bad", ["", "   ", "--queue=bad name"])
def test_other_bad_enqueues(db: Path, bad: str) -> None:
    args = ["enqueue", "ok", bad] if bad.startswith("--") else ["enqueue", bad]
    fails(pq(db, *args))


def test_unwritable_db_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    fails(pq(blocker / "sub" / "queue.db", "enqueue", "a"), "sub")


def test_corrupt_file(db: Path) -> None:
    db.write_bytes(b"\x00garbage" * 1000)
    for args in (["enqueue", "a"], ["stats"], ["doctor"], ["list"]):
        fails(pq(db, *args), "not a queue database")


def test_missing_db_for_read_commands(db: Path) -> None:
    for args in (["stats"], ["list"], ["show", "1"], ["doctor"], ["cancel", "1"]):
        fails(pq(db, *args), "no queue database")
    assert not db.exists()  # reading never creates a database


def test_read_only_db(db: Path) -> None:
    require_mount_namespaces()
    ok(db, "enqueue", "a")
    result = run_in_namespace(
        [read_only_bind(str(db))], [*pq_command(), "--db", str(db), "enqueue", "b"]
    )
    fails(result, "read-only")
    assert json.loads(ok(db, "stats", "--json"))["total"] == 1
