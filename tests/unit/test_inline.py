"""Inline mode: tasks run at once in the caller's process, with the checks and the retry
rules a consumer applies, and without any database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import pqcore as pq
from pqcore import JobState

app = pq.App("/dev/null/never-opened.db")  # cannot exist: inline mode must never open it
CALLS: list[tuple[str, Any]] = []


@app.task(queue="mail", max_attempts=3)
def send(user_id: int, locale: str = "en") -> dict[str, Any]:
    CALLS.append(("send", user_id))
    return {"user": user_id, "locale": locale}


@app.task(max_attempts=4, no_retry_on=(ValueError,))
def flaky(failures: int, error: str = "runtime") -> int:
    CALLS.append(("flaky", failures))
    if len([c for c in CALLS if c[0] == "flaky"]) <= failures:
        raise ValueError("bad") if error == "value" else RuntimeError("try again")
    return len(CALLS)


@app.task(context=True)
def report(ctx: pq.TaskContext, rows: list[int]) -> int:
    for i, _ in enumerate(rows):
        ctx.progress((i + 1) / len(rows), f"row {i + 1}")
    return sum(rows)


@app.task(context=True)
def transactional(ctx: pq.TaskContext, path: str) -> str:
    import sqlite3

    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        ctx.complete_in(conn, result="written")
    conn.close()
    return "ignored: complete_in stored the result"


@app.task
def returns_a_set() -> object:
    return {1, 2}


@pytest.fixture(autouse=True)
def _fresh() -> None:
    CALLS.clear()


def test_a_task_runs_at_once_and_its_handle_holds_the_result() -> None:
    with app.inline() as inline:
        handle = send.enqueue(42, locale="de")
        assert CALLS == [("send", 42)]
        assert handle.wait() == {"user": 42, "locale": "de"}
        assert handle.job.status is JobState.DONE and handle.job.attempts == 1
        assert handle.job.queue == "mail" and handle.job.result == '{"user":42,"locale":"de"}'
    assert inline.handles == [handle]
    assert send(7) == {"user": 7, "locale": "en"}  # calling the function is a plain call


def test_arguments_are_checked_as_for_a_real_enqueue() -> None:
    with app.inline():
        with pytest.raises(pq.InvalidArgument, match="must be int, not str"):
            send.enqueue("42")
        with pytest.raises(pq.InvalidArgument, match="unexpected keyword argument 'lang'"):
            send.enqueue(42, lang="de")
        with pytest.raises(pq.InvalidArgument, match="not JSON"):
            send.enqueue(42, locale=object())
    assert CALLS == []


def test_retryable_failures_are_retried_up_to_max_attempts() -> None:
    with app.inline():
        assert flaky.enqueue(2).wait() == 3
        handle = flaky.enqueue(10)
    assert handle.job.status is JobState.PERMANENTLY_FAILED and handle.job.attempts == 4
    with pytest.raises(pq.TaskFailed, match="RuntimeError: try again") as raised:
        handle.wait()
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_an_error_the_task_declared_not_retryable_fails_at_once() -> None:
    with app.inline():
        handle = flaky.enqueue(5, error="value")
        bad_result = returns_a_set.enqueue()
    assert handle.job.attempts == 1 and isinstance(handle.exception, ValueError)
    with pytest.raises(pq.TaskFailed, match="holds a set"):
        bad_result.wait()


def test_dependencies_follow_their_policy() -> None:
    with app.inline():
        ok = send.enqueue(1)
        failed = flaky.enqueue(5, error="value")
        after_ok = send.enqueue(2, after=[ok])
        cancelled = send.enqueue(3, after=[ok, failed])
        anyway = send.enqueue(4, after=[failed], on_dependency_failure="run")
        with pytest.raises(pq.InvalidArgument, match="do not exist: 999"):
            send.enqueue(5, after=[999])
    assert after_ok.wait() == {"user": 2, "locale": "en"}
    assert cancelled.job.status is JobState.CANCELLED
    assert "which it depends on, ended permanently_failed" in (cancelled.job.error or "")
    assert anyway.wait()["user"] == 4
    assert [c[1] for c in CALLS if c[0] == "send"] == [1, 2, 4]


def test_many_calls_at_once_run_in_order() -> None:
    with app.inline():
        handles = app.enqueue_many([send.request(i) for i in (1, 2)])
        last = app.enqueue_many([send.request(3, after=handles)])[0]
    assert [h.wait()["user"] for h in [*handles, last]] == [1, 2, 3]


def test_progress_and_complete_in_are_recorded(tmp_path: Path) -> None:
    with app.inline():
        handle = report.enqueue([1, 2, 3])
        written = transactional.enqueue(str(tmp_path / "app.db"))
    assert handle.wait() == 6
    assert handle.progress == [(1 / 3, "row 1"), (2 / 3, "row 2"), (1.0, "row 3")]
    assert written.wait() == "written"


def test_outside_the_block_enqueue_uses_the_queue_again() -> None:
    with app.inline():
        pass
    with pytest.raises(pq.StorageError):
        send.enqueue(1)  # the app's (unreachable) database
