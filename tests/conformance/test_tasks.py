"""Tasks on every backend: arguments checked at enqueue, run by the shared runner (the one
``pq consumer --tasks`` uses), results stored, the declared retry policy, progress under
the lease, handles that wait."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import pqcore as pq
from pqcore import JobState, Queue, running, taskcall
from tests.backends import FakeClock
from tests.conformance.helpers import claim_one, snapshot, token

app = pq.App()
ATTEMPTS: dict[str, int] = {}


@app.task(queue="tasks", max_attempts=3, priority=4)
def add(a: int, b: int = 0, *, scale: float = 1.0) -> float:
    return (a + b) * scale


@app.task(queue="tasks")
def echo(items: list[str], mapping: dict[str, int] | None = None) -> dict[str, Any]:
    return {"items": items, "mapping": mapping}


@app.task(queue="tasks", max_attempts=3, no_retry_on=(KeyError,))
def flaky(key: str, failures: int) -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if key.startswith("key"):
        raise KeyError(key)
    if key.startswith("never"):
        raise pq.NotRetryable("bad input, do not retry")
    if ATTEMPTS[key] <= failures:
        raise RuntimeError(f"attempt {ATTEMPTS[key]} failed")
    return f"ok after {ATTEMPTS[key]}"


@app.task(queue="tasks", retry_on=(ConnectionError,))
def only_network(kind: str) -> None:
    raise ConnectionError(kind) if kind == "net" else ValueError(kind)


@app.task(queue="tasks")
def returns(kind: str) -> object:
    return {"set": {1}, "big": "x" * 70_000, "keys": {1: "a"}}[kind]


@app.task(queue="tasks", context=True)
def steps(ctx: pq.TaskContext, n: int) -> list[int]:
    for i in range(n):
        ctx.progress((i + 1) / n, f"step {i + 1} of {n}")
    return [ctx.job_id, ctx.attempt]


@pytest.fixture
def tasks(queue: Queue) -> Iterator[Queue]:
    app.use(queue)
    ATTEMPTS.clear()
    yield queue
    app.use(None)


def run_all(queue: Queue, clock: FakeClock | None = None, rounds: int = 5) -> None:
    """Run every task job there is, and (with a clock) its retries once their backoff is over."""
    for _ in range(rounds):
        app.work(queues=["tasks"])
        if clock is None:
            return
        clock.advance(7200)
        queue.schedule_retries()


def test_arguments_are_stored_as_json_and_read_back(tasks: Queue) -> None:
    handle = add.enqueue(2, b=3, scale=0.5)
    job = tasks.get(handle.id)
    assert (job.queue, job.priority, job.max_attempts) == ("tasks", 4, 3)
    call = taskcall.decode(job.data)
    assert call is not None
    assert (call.task, call.args, call.kwargs) == (
        "tests.conformance.test_tasks.add",
        [2],
        {"b": 3, "scale": 0.5},
    )
    assert call.describe() == "add(2, b=3, scale=0.5)"
    assert taskcall.describe("jobs/0001.txt") == "jobs/0001.txt"  # file jobs stay what they are
    run_all(tasks)
    assert handle.wait(timeout=5) == 2.5
    assert tasks.get(handle.id).result == "2.5"


BAD_CALLS = [
    (lambda: add.enqueue(1, c=2), "unexpected keyword argument 'c'"),
    (lambda: add.enqueue(), "missing a required argument: 'a'"),
    (lambda: add.enqueue(1, 2, 3), "too many positional arguments"),
    (lambda: add.enqueue("1"), "argument 'a' of .* must be int, not str"),
    (lambda: add.enqueue(True), "must be int, not bool"),
    (lambda: add.enqueue(1, scale="x"), "argument 'scale' .* must be float"),
    (lambda: echo.enqueue(["a", 1]), "argument 'items' .* must be list"),
    (lambda: echo.enqueue(["a"], {"k": "v"}), "argument 'mapping'"),
    (lambda: echo.enqueue([b"bytes"]), "holds a bytes"),
    (lambda: echo.enqueue(["a"], {1: 2}), "dict key 1"),
    (lambda: add.enqueue(1, scale=float("nan")), "holds nan, which JSON cannot carry"),
    (lambda: echo.enqueue(["x" * 70_000]), "bytes; the limit is 65536"),
    (lambda: add.enqueue(1, dedupe_key=""), "dedupe key must be non-empty"),
    (lambda: add.enqueue(1, after=[999]), "do not exist: 999"),
]


def test_a_bad_call_is_refused_in_the_caller_and_changes_nothing(tasks: Queue) -> None:
    add.enqueue(1)
    before = snapshot(tasks)
    for call, message in BAD_CALLS:
        with pytest.raises(pq.InvalidArgument, match=message):
            call()
    assert snapshot(tasks) == before


def test_a_parameter_named_like_an_enqueue_option_is_refused_at_declaration() -> None:
    with pytest.raises(pq.InvalidArgument, match="'after' has the name of an enqueue option"):

        @app.task(name="clashing")
        def clashing(after: int) -> None: ...


def test_a_retryable_failure_is_retried_with_backoff_up_to_max_attempts(
    tasks: Queue, clock: FakeClock
) -> None:
    works = flaky.enqueue("works", 2)
    gives_up = flaky.enqueue("gives-up", 5)
    app.work(queues=["tasks"])
    assert tasks.get(works.id).status is JobState.FAILED  # waiting for its backoff
    assert "RuntimeError: attempt 1 failed" in (tasks.get(works.id).error or "")
    run_all(tasks, clock)
    assert works.wait(timeout=1) == "ok after 3"
    with pytest.raises(pq.TaskFailed, match="ended permanently_failed: RuntimeError: attempt 3"):
        gives_up.wait(timeout=1)
    assert tasks.get(gives_up.id).attempts == 3


def test_failures_no_retry_can_fix_dead_letter_at_once(tasks: Queue, clock: FakeClock) -> None:
    expected = {
        flaky.enqueue("key-1", 0): "KeyError: 'key-1'",  # no_retry_on
        flaky.enqueue("never-1", 0): "NotRetryable: bad input",
        only_network.enqueue("value"): "ValueError: value",  # not one retry_on names
        returns.enqueue("set"): "holds a set",  # a result must be JSON ...
        returns.enqueue("keys"): "dict key 1",
        returns.enqueue("big"): "bytes as JSON; the limit is 65536",  # ... and fit
    }
    run_all(tasks, clock)
    for handle, error in expected.items():
        job = tasks.get(handle.id)
        assert (job.status, job.attempts) == (JobState.PERMANENTLY_FAILED, 1), job
        assert error in (job.error or "")
        with pytest.raises(pq.TaskFailed) as raised:
            handle.wait(timeout=1)
        assert raised.value.status == "permanently_failed"
        assert raised.value.task == handle_task(job)


def handle_task(job: pq.Job) -> str | None:
    call = taskcall.decode(job.data)
    return call.task if call else None


def test_retry_on_retries_only_what_it_names(tasks: Queue, clock: FakeClock) -> None:
    handle = only_network.enqueue("net")
    run_all(tasks, clock)
    assert tasks.get(handle.id).attempts == tasks.settings.max_attempts


def test_a_task_this_process_does_not_know_fails_retryably(tasks: Queue) -> None:
    job = tasks.enqueue(taskcall.encode("nowhere.to_be_found", [1], {}), queue="tasks")
    app.work(queues=["tasks"])
    failed = tasks.get(job.id)
    assert failed.status is JobState.FAILED  # another consumer may know it: retried later
    assert "not declared in this consumer" in (failed.error or "")


def test_arguments_that_no_longer_fit_the_function_dead_letter(tasks: Queue) -> None:
    payload = taskcall.encode("tests.conformance.test_tasks.add", [1], {"removed": 2})
    job = tasks.enqueue(payload, queue="tasks")
    broken = tasks.enqueue("task:{not json", queue="tasks")
    app.work(queues=["tasks"])
    assert tasks.get(job.id).status is JobState.PERMANENTLY_FAILED
    assert "no longer fit the task" in (tasks.get(job.id).error or "")
    assert tasks.get(broken.id).status is JobState.PERMANENTLY_FAILED


def test_progress_is_stored_under_the_lease_and_throttled(tasks: Queue, clock: FakeClock) -> None:
    handle = steps.enqueue(4)
    job = claim_one(tasks, queues=["tasks"])
    ctx = running.TaskContext(tasks, job, steps)
    ctx.progress(0.1, "starting")
    ctx.progress(0.2, "dropped: within the interval")
    assert (tasks.get(job.id).progress, tasks.get(job.id).progress_message) == (0.1, "starting")
    ctx.progress(1.0, "finished")  # the last word always goes through
    assert tasks.get(job.id).progress == 1.0
    with pytest.raises(pq.InvalidArgument, match="fraction from 0 to 1"):
        ctx.progress(1.5)
    tasks.mark_failed(job.id, actor="alice")  # the lease is gone: a zombie writes nothing
    with pytest.raises(pq.LeaseLost):
        tasks.progress(job.id, token(job), 0.5)
    assert tasks.get(job.id).progress == 1.0
    tasks.resubmit(job.id, actor="alice")
    run_all(tasks)
    assert handle.wait(timeout=1) == [job.id, 1]  # a resubmit starts the attempts afresh
    done = tasks.get(job.id)
    assert (done.progress, done.progress_message) == (1.0, "step 4 of 4")  # a claim reset it


def test_enqueue_at_in_options_and_dedupe(tasks: Queue, clock: FakeClock) -> None:
    at = add.enqueue_at(clock.now + 600, 1)
    later = add.enqueue_in(60, 2)
    urgent = add.options(queue="urgent", priority=9, max_attempts=1).enqueue(3)
    once = add.enqueue(4, dedupe_key="four")
    again = add.enqueue(4, dedupe_key="four")
    assert tasks.get(at.id).run_at == clock.now + 600
    assert tasks.get(later.id).run_at == clock.now + 60
    job = tasks.get(urgent.id)
    assert (job.queue, job.priority, job.max_attempts) == ("urgent", 9, 1)
    assert again.id == once.id
    assert app.work(queues=["tasks"]) == 1  # only the one due now
    clock.advance(601)
    assert app.work(queues=["tasks", "urgent"]) == 3
    assert [h.wait(timeout=1) for h in (at, later, urgent)] == [1, 2, 3]


def test_wait_gives_up_after_its_timeout_and_reports_a_cancel(tasks: Queue) -> None:
    handle = add.enqueue(1)
    with pytest.raises(pq.WaitTimeout, match="still pending"):
        handle.wait(timeout=0.05)
    tasks.cancel(handle.id, actor="alice", reason="not today")
    with pytest.raises(pq.TaskFailed, match="ended cancelled"):
        handle.wait(timeout=1)
    assert app.handle(handle.id).status is JobState.CANCELLED


def test_tasks_wait_for_each_other_and_many_go_in_one_transaction(tasks: Queue) -> None:
    handles = app.enqueue_many([add.request(i) for i in range(5)])
    total = echo.enqueue(["sum"], after=handles)
    assert tasks.get(total.id).waiting_for == 5
    app.work(queues=["tasks"])
    assert [h.wait(timeout=1) for h in handles] == [0, 1, 2, 3, 4]
    assert total.wait(timeout=1) == {"items": ["sum"], "mapping": None}
    events = [e for h in handles for e in tasks.history(h.id) if e.to_status is JobState.DONE]
    claim = next(e for e in tasks.history(total.id) if e.action == "claim")
    assert claim.id > max(e.id for e in events)


def test_a_result_is_json_text_on_the_job(tasks: Queue) -> None:
    handle = echo.enqueue(["é", "ü"], {"n": 1})
    run_all(tasks)
    job = tasks.get(handle.id)
    assert json.loads(job.result or "") == {"items": ["é", "ü"], "mapping": {"n": 1}}
    assert job.result_value() == handle.wait(timeout=1)
