"""The consoles show what a task job is: its call, arguments, result, progress while it
runs and the jobs it waits for (issue 13), in the job table, the job page and Live."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import pqcore as pq
from pqcore import JobState, QueueSettings, open_queue
from tests.consoles.conftest import logged_in


@pytest.fixture
def task_jobs(db: Path) -> dict[str, int]:
    """A done task with a result, a running one with progress, a job waiting for two."""
    queue = open_queue(str(db), settings=QueueSettings(db=str(db)))
    app = pq.App(queue)

    @app.task(queue="email")
    def send_welcome(user_id: int, locale: str = "en") -> dict[str, object]:
        return {"sent": True}

    try:
        finished = send_welcome.enqueue(42, locale="de")
        running = send_welcome.enqueue(7)
        waiting = queue.enqueue("jobs/final.txt", after=[running.id, finished.id])
        [first] = queue.claim("worker-a", limit=1, queues=["email"], lease_seconds=600)
        assert first.id == finished.id
        queue.complete(first.id, first.lease_token or "", result={"sent": True, "to": "de"})
        [second] = queue.claim("worker-a", limit=1, queues=["email"], lease_seconds=600)
        queue.progress(second.id, second.lease_token or "", 0.4, "rendering the template")
        return {"finished": finished.id, "running": running.id, "waiting": waiting.id}
    finally:
        app.close()
        queue.close()


def texts(at: AppTest) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.code]
    parts += [e.value for e in at.info] + [str(e.value) for e in at.get("progress")]
    return "\n".join(str(p) for p in parts)


def open_job(at: AppTest, job_id: int) -> AppTest:
    at.switch_page("views/job.py").run()
    at.text_input(key="lookup_id").input(str(job_id))
    return at.run()


def test_the_job_page_shows_the_call_its_arguments_and_its_result(
    console_env, task_jobs: dict[str, int]
) -> None:
    at = open_job(logged_in("admin", "alice"), task_jobs["finished"])
    assert not at.exception, at.exception
    shown = texts(at)
    assert "send_welcome(42, locale='de')" in shown or 'send_welcome(42, locale="de")' in shown
    assert '"kwargs"' in shown and '"locale": "de"' in shown  # arguments, pretty JSON
    assert '"to": "de"' in shown  # the stored result, pretty-printed
    assert "Result" in shown


def test_a_running_task_shows_its_progress_on_its_page_and_in_live(
    console_env, task_jobs: dict[str, int]
) -> None:
    at = open_job(logged_in("ops", "bob"), task_jobs["running"])
    assert not at.exception, at.exception
    [bar] = at.get("progress")
    assert "40%" in str(bar.proto.text) and "rendering the template" in str(bar.proto.text)
    live = logged_in("ops", "bob")
    assert not live.exception, live.exception
    running = [f.value for f in live.dataframe if "progress" in f.value.columns]
    assert running, "the Live page lists running jobs with their progress"
    row = running[0].set_index("id").loc[task_jobs["running"]]
    assert row["progress"] == pytest.approx(0.4)
    assert row["says"] == "rendering the template"
    assert row["task / payload"].startswith("send_welcome(7")


def test_a_waiting_job_says_what_it_waits_for(console_env, task_jobs: dict[str, int]) -> None:
    at = open_job(logged_in("admin", "alice"), task_jobs["waiting"])
    assert not at.exception, at.exception
    shown = texts(at)
    assert "not claimable until 1 more" in shown  # the finished one no longer counts
    [waits] = [f.value for f in at.dataframe if "if it fails" in f.value.columns]
    assert sorted(waits["job"]) == sorted(f"?job={task_jobs[k]}" for k in ("running", "finished"))
    assert set(waits["now"]) == {"processing", "done"}


def test_the_job_table_reads_tasks_and_waiting_jobs(console_env, task_jobs: dict[str, int]) -> None:
    at = logged_in("admin", "alice")
    assert not at.exception, at.exception
    [table] = [f.value for f in at.dataframe if "task / payload" in f.value.columns]
    rows = table.set_index("id")
    assert rows.loc[task_jobs["finished"], "task / payload"].startswith("send_welcome(42")
    assert rows.loc[task_jobs["waiting"], "status"] == "pending · waits for 1"
    assert rows.loc[task_jobs["running"], "status"] == "processing 40%"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics.get("Waiting for other jobs") == "1"
    with open_queue(str(console_env.parent / "queue.db"), create=False) as queue:
        assert queue.get(task_jobs["waiting"]).status is JobState.PENDING
