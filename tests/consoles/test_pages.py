"""What each page shows: the browser's filters and keyset paging, statistics, the ops view."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa

from pqcore import EnqueueRequest, JobOrder, JobState, Queue, open_queue
from tests.backends import FakeClock
from tests.consoles.conftest import logged_in
from tests.consoles.seeding import Seeded

Inspect = Callable[[], Queue]


def shown_ids(at) -> list[int]:  # type: ignore[no-untyped-def]
    return [int(i) for i in at.dataframe[0].value["id"]]


def test_browser_pages_through_every_job_once(
    console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    with inspect_queue() as queue:
        queue.enqueue_many(EnqueueRequest(f"bulk/{n}.txt") for n in range(50))
        total = queue.stats().total
    at = logged_in("admin", "alice")
    at.selectbox(key="jobs_size").set_value(25).run()
    seen: list[int] = []
    for page in range(1, 4):
        assert f"page {page}" in at.caption[0].value
        seen += shown_ids(at)
        if page < 3:
            at.button(key="jobs_next").click().run()
    assert at.button(key="jobs_next").disabled
    assert seen == sorted(seen, reverse=True) and len(set(seen)) == len(seen) == total
    at.button(key="jobs_prev").click().run()
    assert shown_ids(at) == seen[25:50] and "page 2" in at.caption[0].value
    at.selectbox(key="jobs_desc").set_value(False).run()
    assert "page 1" in at.caption[0].value  # a new order starts from the first page
    assert "oldest first" in at.caption[0].value
    assert shown_ids(at) == sorted(seen)[:25]


def test_browser_sorts_every_job_on_the_server_and_keeps_it_in_the_url(
    console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    with inspect_queue() as queue:
        urgent = queue.enqueue("urgent", priority=99).id
        queue.enqueue_many(EnqueueRequest(f"bulk/{n}.txt") for n in range(60))
    at = logged_in("admin", "alice")
    at.selectbox(key="jobs_sort").set_value(JobOrder.PRIORITY).run()
    assert shown_ids(at)[0] == urgent  # the whole table, not the 50 rows on the page
    assert "sorted by priority, highest first" in at.caption[0].value
    assert at.query_params["sort"] == "priority"
    at.button(key="jobs_next").click().run()
    assert urgent not in shown_ids(at) and at.query_params["page"] == "2"


def test_browser_filters_by_status_queue_and_text(console_env, seeded: Seeded) -> None:
    at = logged_in("admin", "alice")
    at.multiselect(key="jobs_status").set_value(
        [JobState.FAILED, JobState.PERMANENTLY_FAILED]
    ).run()
    assert at.query_params["status"] == "failed,dead-letter"
    assert sorted(shown_ids(at)) == sorted(seeded.failed + seeded.dead)
    at.text_input(key="jobs_text").input("Timeout").run()
    assert sorted(shown_ids(at)) == sorted(seeded.failed)
    at.text_input(key="jobs_text").input("").run()
    at.selectbox(key="jobs_queue").set_value("emails").run()
    frame = at.dataframe[0].value
    assert set(frame["queue"]) == {"emails"} and len(frame) > 0
    at.text_input(key="jobs_text").input("50%_off").run()  # LIKE wildcards are literal
    assert "No jobs match." in at.info[0].value


def test_browser_time_range_filter(console_env, seeded: Seeded, inspect_queue: Inspect) -> None:
    at = logged_in("admin", "alice")
    at.selectbox(key="jobs_time").set_value("last 15 minutes").run()
    assert len(shown_ids(at)) == 14  # all seeded just now
    at.selectbox(key="jobs_time").set_value("custom").run()
    start = at.get("datetime_input")[0]
    assert start is not None and not at.exception


def test_browser_rejects_bad_search_text(console_env, seeded: Seeded) -> None:
    at = logged_in("admin", "alice")
    at.text_input(key="jobs_text").input("tab\there").run()
    assert "control characters" in at.error[0].value
    assert len(at.dataframe) == 0


def test_job_opened_by_its_url_shows_everything_and_its_history(
    console_env, seeded: Seeded
) -> None:
    at = logged_in("admin", "alice")
    at.query_params["job"] = str(seeded.dead[0])
    at.run()
    assert at.subheader[0].value == f"Job {seeded.dead[0]} — dead letter"
    *fields, history = [t.value for t in at.table]
    assert list(history["action"]) == ["enqueue", "claim", "dead letter"]
    assert list(history["to"]) == ["pending", "processing", "dead letter"]
    assert list(history["by"]) == ["producer", "worker-a", "worker-a"]
    values = {row[0]: row[1] for table in fields for row in table.itertuples(index=False)}
    assert values["status"] == "dead letter" and values["attempts"] == "1 of 3"
    assert "lease token" not in values and "lease_token" not in values
    assert [c.value for c in at.code] == ["jobs/0004.txt", "ValueError: malformed record"]


def test_statistics_page_draws_every_chart(console_env, seeded: Seeded) -> None:
    at = logged_in("admin", "alice")
    at.switch_page("views/admin_statistics.py").run()
    assert not at.exception and not at.error
    assert [s.value for s in at.subheader] == [
        "Jobs by status", "Throughput", "Attempts (newest 10,000 jobs tried)",
        "Processing time (newest 10,000 done)",
        "Top failure reasons (newest 10,000 failed and dead-letter jobs)",
    ]  # fmt: skip
    charts = [chart_data(c) for c in at.get("vega_lite_chart")]
    assert len(charts) == 5
    by_status, throughput, attempts, durations, reasons = charts
    assert dict(zip(by_status["status"], by_status["jobs"], strict=True)) == {
        "pending": 3, "processing": 1, "done": 4, "failed (retrying)": 2, "dead letter": 3,
        "cancelled": 1,
    }  # fmt: skip
    totals = throughput.groupby("kind")["jobs"].sum().to_dict()
    assert totals == {"enqueued": 14, "completed": 4, "failed": 5}
    assert dict(zip(attempts["attempts"], attempts["jobs"], strict=True)) == {1: 10}
    assert durations["jobs"].sum() == 4 and len(durations) == 40
    assert {m.label: m.value for m in at.metric}["jobs measured"] == "4"
    assert dict(zip(reasons["reason"], reasons["jobs"], strict=True)) == {
        "ValueError: malformed record": 3, "TimeoutError: upstream slow": 2,
    }  # fmt: skip


def chart_data(chart) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """The rows a Vega-Lite chart was drawn from (Streamlit ships them as Arrow)."""
    [dataset] = chart.proto.datasets
    return pa.ipc.open_stream(dataset.data.data).read_all().to_pandas()


def test_dead_letter_page_lists_only_dead_jobs(console_env, seeded: Seeded) -> None:
    at = logged_in("admin", "alice")
    at.switch_page("views/admin_dead_letter.py").run()
    assert sorted(shown_ids(at)) == sorted(seeded.dead)
    assert {m.label: m.value for m in at.metric}["Dead-letter jobs"] == "3"


def test_ops_live_view_counts_and_consumers(console_env, seeded: Seeded) -> None:
    at = logged_in("ops", "bob")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Pending"] == "3" and metrics["Dead letter"] == "3"
    assert metrics["Processing"] == "1" and metrics["Enqueued, last 60 s"] == "14"
    consumers = at.dataframe[-1].value
    rows = {r["consumer"]: r for r in consumers.to_dict("records")}
    assert rows["worker-b"]["flag"] == "DEAD" and rows["worker-a"]["flag"] == ""
    assert rows["worker-a"]["host"] == "host-a" and rows["worker-a"]["pid"] == 101
    assert rows["worker-a"]["current job"] == str(seeded.processing[0])
    assert rows["worker-a"]["jobs done"] == 4
    assert "Running jobs (1)" in [h.value for h in at.subheader]
    running = at.dataframe[-2].value  # no job is stalled: running jobs, then consumers
    assert list(running["id"]) == seeded.processing
    assert list(running["consumer"]) == ["worker-a"]


def test_ops_live_view_flags_stalled_jobs(
    console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    with inspect_queue() as queue:
        queue.enqueue("will stall")
        [held] = queue.claim("worker-z", lease_seconds=0.001)  # lapses before the page reads
    at = logged_in("ops", "bob")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Stalled"] == "1"
    stalled = at.dataframe[0].value
    assert list(stalled["id"]) == [held.id] and list(stalled["consumer"]) == ["worker-z"]


def seed_unclaimed(db: Path, *, live_consumer: bool) -> None:
    """A job runnable for ten minutes and no claim for an hour, written at those times."""
    now = time.time()
    clock = FakeClock(now - 3600)
    with open_queue(str(db), clock=clock) as queue:
        queue.enqueue("jobs/early.txt")
        [job] = queue.claim("worker-a")
        queue.complete(job.id, job.lease_token or "")
        clock.now = now - 600
        queue.enqueue("jobs/waiting.txt")
        if live_consumer:
            clock.now = now - 1
            queue.consumer_register("worker-a", host="host-a", pid=101, queues="emails")


def test_ops_live_view_warns_when_jobs_wait_and_nothing_is_claimed(console_env, db: Path) -> None:
    seed_unclaimed(db, live_consumer=True)
    at = logged_in("ops", "bob")
    assert not at.exception
    [warning] = at.warning
    assert warning.value.startswith("Jobs are waiting and nothing is being claimed")
    assert "1 live consumer(s) are registered but took none" in warning.value
    assert {m.label: m.value for m in at.metric}["Pending"] == "1"


def test_ops_live_view_warns_when_no_consumer_is_registered(console_env, db: Path) -> None:
    seed_unclaimed(db, live_consumer=False)
    at = logged_in("ops", "bob")
    [warning] = at.warning
    assert "no live consumer is registered in this database" in warning.value
    assert "PQ_STACK_DB" in warning.value


def test_ops_live_view_has_no_warning_while_jobs_are_taken(console_env, seeded: Seeded) -> None:
    at = logged_in("ops", "bob")  # three jobs pending, but claimed-from a moment ago
    assert {m.label: m.value for m in at.metric}["Pending"] == "3"
    assert not at.warning
