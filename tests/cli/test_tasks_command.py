"""`pq enqueue --after`, `pq show` and `pq list` of task jobs, and `pq consumer --tasks`
given a module that does not import: the real entry point, good and bad input."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from pqcore import open_queue, taskcall
from tests.cli.test_pq_command import fails, ok, pq
from tests.conftest import pq_command


def test_enqueue_after_waits_and_show_lists_both_sides(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    first = int(ok(db, "enqueue", "jobs/1.txt"))
    second = int(ok(db, "enqueue", "jobs/2.txt", "--after", str(first),
                    "--on-dependency-failure", "run"))  # fmt: skip
    shown = json.loads(ok(db, "show", str(second), "--json"))
    assert shown["job"]["waiting_for"] == 1
    assert [(d["depends_on"], d["on_failure"]) for d in shown["dependencies"]] == [(first, "run")]
    assert "waits for 1" in ok(db, "list")
    assert "waiting for dependencies: 1" in ok(db, "stats")
    assert f"job {second} (pending; open; on failure: run)" in ok(db, "show", str(first))


def test_bad_dependencies_are_one_line_exit_2_and_change_nothing(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    ok(db, "enqueue", "jobs/1.txt")
    fails(pq(db, "enqueue", "x", "--after", "999"), "do not exist: 999")
    assert pq(db, "enqueue", "x", "--after", "999").returncode == 2
    fails(pq(db, "enqueue", "x", "--after", "1", "--on-dependency-failure", "maybe"), "invalid")
    assert open_queue(str(db)).stats().total == 1


def test_show_and_list_read_a_task_call(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    payload = taskcall.encode("myapp.tasks.send_welcome", [42], {"locale": "de"})
    job_id = int(ok(db, "enqueue", payload, "--queue", "email"))
    assert 'send_welcome(42, locale="de")' in ok(db, "list")
    text = ok(db, "show", str(job_id))
    assert "task: myapp.tasks.send_welcome" in text
    assert 'call: send_welcome(42, locale="de")' in text
    shown = json.loads(ok(db, "show", str(job_id), "--json"))
    assert shown["task"] == {"name": "myapp.tasks.send_welcome", "args": [42],
                             "kwargs": {"locale": "de"}}  # fmt: skip


def test_a_task_module_that_does_not_import_is_one_line_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [*pq_command(), "consumer", "--db", str(tmp_path / "queue.db"), "--tasks", "no.such",
         "--metrics-port", "0", "--log-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    [line] = [x for x in result.stderr.splitlines() if x.startswith("pq consumer")]
    assert "cannot import task module 'no.such'" in line
