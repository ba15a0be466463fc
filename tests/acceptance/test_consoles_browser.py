"""Both consoles served by `pq console` (streamlit run) and driven by Debian's Chromium.

Logs in, checks the counts against the seeded queue, resubmits a dead job through
the admin console and checks the database and the job's history; saves screenshots
to tests/artifacts/consoles/.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pqcore import JobCancelled, JobState, open_queue
from services.consoles.common import when
from tests.acceptance.conftest import (
    ARTIFACTS,
    Consoles,
    start_consoles,
    stop_consoles,
    wait_healthy,
)
from tests.conftest import pq_command
from tests.consoles.seeding import PASSWORDS, Seeded, seeded_database, write_users
from tests.support import free_port

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Seeded]:
    directory = tmp_path_factory.mktemp("consoles")
    db, ids = seeded_database(directory)
    return db, write_users(directory / "users.json"), ids


@pytest.fixture(scope="module")
def consoles(seeded: tuple[Path, Path, Seeded]) -> Iterator[Consoles]:
    db, users, _ = seeded
    running = start_consoles(db, users)
    try:
        yield running
    finally:
        stop_consoles(running)


def log_in(page, url: str, user: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url, wait_until="domcontentloaded")
    page.get_by_label("User", exact=True).fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def metric(page, label: str) -> str:  # type: ignore[no-untyped-def]
    box = page.locator('[data-testid="stMetric"]', has_text=label).first
    box.wait_for(timeout=20_000)
    return str(box.locator('[data-testid="stMetricValue"]').inner_text()).strip()


def test_admin_console_login_counts_and_resubmit(
    consoles: Consoles, browser, seeded: tuple[Path, Path, Seeded]
) -> None:  # type: ignore[no-untyped-def]
    db, _, ids = seeded
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1500, "height": 1300})
    page.set_default_timeout(20_000)

    page.goto(consoles["admin"], wait_until="domcontentloaded")
    page.get_by_role("button", name="Log in").wait_for()
    page.get_by_label("Password", exact=True).wait_for()
    page.wait_for_timeout(500)  # fonts and labels settle for the screenshot
    page.screenshot(path=str(ARTIFACTS / "admin-login.png"))
    assert page.locator('[data-testid="stMetric"]').count() == 0  # nothing before login

    log_in(page, consoles["admin"], "alice", "wrong password")
    page.get_by_text("Wrong user name or password").wait_for()

    log_in(page, consoles["admin"], "alice", PASSWORDS["alice"])
    with open_queue(str(db), create=False) as queue:
        counts = queue.stats().counts
    assert metric(page, "Dead letter") == str(counts["permanently_failed"]) == "3"
    assert metric(page, "Done") == str(counts["done"])
    assert metric(page, "Pending") == str(counts["pending"])
    page.locator('[data-testid="stDataFrame"]').first.wait_for()  # a canvas grid: no DOM text
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "admin-jobs.png"), full_page=True)

    page.get_by_role("link", name=re.compile("Dead letter")).click()
    page.get_by_text("Dead-letter jobs").first.wait_for()
    page.get_by_text("ValueError: malformed record").first.wait_for()  # top errors list
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "admin-dead-letter.png"), full_page=True)

    page.get_by_role("link", name=re.compile("Statistics")).click()
    page.get_by_text("Top failure reasons").wait_for()
    page.locator('[data-testid="stVegaLiteChart"]').first.wait_for()
    page.wait_for_timeout(1500)  # let the charts finish drawing for the screenshot
    page.screenshot(path=str(ARTIFACTS / "admin-statistics.png"), full_page=True)

    victim = ids.dead[0]
    page.get_by_role("link", name=re.compile("Job by id")).click()
    box = page.get_by_label("Job id")
    box.fill(str(victim))
    box.press("Enter")
    page.get_by_text(f"Job {victim} — dead letter").wait_for()
    page.get_by_label("Reason (recorded in the history)").fill("redrive after the fix")
    page.get_by_role("button", name="Resubmit").click()
    page.get_by_text(f"Job {victim}: resubmit → pending").wait_for()
    page.get_by_text(f"Job {victim} — pending").wait_for()
    page.screenshot(path=str(ARTIFACTS / "admin-job-resubmitted.png"), full_page=True)

    with open_queue(str(db), create=False) as queue:
        assert queue.get(victim).status is JobState.PENDING
        last = queue.history(victim)[-1]
    assert (last.action, last.actor, last.detail) == ("resubmit", "alice", "redrive after the fix")
    page.close()


def test_ops_console_live_view_and_consumers(
    consoles: Consoles, browser, seeded: tuple[Path, Path, Seeded]
) -> None:  # type: ignore[no-untyped-def]
    db, _, _ = seeded
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1500, "height": 1300})
    page.set_default_timeout(20_000)
    log_in(page, consoles["ops"], "bob", PASSWORDS["bob"])
    page.get_by_text("Consumers").first.wait_for()
    # The grid draws on a canvas; its accessible table holds the cell texts.
    dead_row = page.locator('[role="row"]', has_text="worker-b").first
    dead_row.wait_for(state="attached")
    assert dead_row.locator('[role="gridcell"]', has_text=re.compile("^DEAD$")).count() == 1
    # worker-a also shows in the running jobs table; its consumers row lists its queues.
    live_row = page.locator('[role="row"]', has_text="default,emails").first
    assert live_row.locator('[role="gridcell"]', has_text=re.compile("^worker-a$")).count() == 1
    assert live_row.locator('[role="gridcell"]', has_text=re.compile("^DEAD$")).count() == 0
    assert live_row.locator('[role="gridcell"]', has_text="host-a").count() == 1

    # The view refreshes itself: a job enqueued now shows up without any click.
    with open_queue(str(db), create=False) as queue:
        before = queue.stats().counts["pending"]
        queue.enqueue("jobs/live.txt")
    deadline = time.monotonic() + 30
    while metric(page, "Pending") != str(before + 1):
        assert time.monotonic() < deadline, "the ops console did not refresh by itself"
        page.wait_for_timeout(300)
    page.screenshot(path=str(ARTIFACTS / "ops-live.png"), full_page=True)

    # The user's place survives the refreshes: a job looked up below stays open.
    box = page.get_by_label("Job id")
    box.fill(str(seeded[2].dead[1]))
    box.press("Enter")
    heading = page.get_by_text(f"Job {seeded[2].dead[1]} — dead letter")
    heading.wait_for()
    with open_queue(str(db), create=False) as queue:
        queue.enqueue("jobs/live-2.txt")
    deadline = time.monotonic() + 30
    while metric(page, "Pending") != str(before + 2):
        assert time.monotonic() < deadline, "the ops console stopped refreshing"
        page.wait_for_timeout(300)
    assert heading.is_visible() and box.input_value() == str(seeded[2].dead[1])
    page.screenshot(path=str(ARTIFACTS / "ops-live-with-job.png"), full_page=True)
    page.close()


def test_without_users_the_console_asks_for_a_printed_one_time_password(
    browser, seeded: tuple[Path, Path, Seeded], tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    db, _, _ = seeded
    env = {k: v for k, v in os.environ.items() if not k.startswith("PQ_CONSOLE_")}
    port, log = free_port(), tmp_path / "ops.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*pq_command(), "console", "ops", "--port", str(port), "--db", str(db)],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, process, log)
        match = re.search(r"one-time password: (\S+)", log.read_text())
        assert match, log.read_text()
        page = browser.new_page(viewport={"width": 1500, "height": 1300})
        page.set_default_timeout(20_000)
        log_in(page, url, "admin", "admin")
        page.get_by_text("Wrong user name or password").wait_for()
        log_in(page, url, "admin", match.group(1))
        assert metric(page, "Dead letter").isdigit()
        page.close()
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_ops_pauses_and_resumes_a_queue_and_cancels_a_running_job(
    consoles: Consoles, browser, seeded: tuple[Path, Path, Seeded]
) -> None:  # type: ignore[no-untyped-def]
    """Issue 12 through the ops console: pause then resume a queue, and cancel a job a
    consumer holds (a real claim through the API): its next heartbeat is refused."""
    db, _, _ = seeded
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open_queue(str(db), create=False) as queue:
        queue.enqueue("jobs/long-running.txt", queue="held")
        [held] = queue.claim("worker-h", queues=["held"], lease_seconds=600)
    page = browser.new_page(viewport={"width": 1500, "height": 1300})
    page.set_default_timeout(20_000)
    log_in(page, consoles["ops"], "bob", PASSWORDS["bob"])
    page.get_by_text("Consumers").first.wait_for()

    page.get_by_role("link", name=re.compile("Queues")).click()
    page.get_by_text("Change a queue").wait_for()  # the first queue, default, is picked
    page.get_by_label("Reason (recorded in the audit trail)").fill("deploying the mailer")
    page.get_by_role("button", name="Pause default").click()
    page.get_by_text("Queue default paused").wait_for()
    page.get_by_text("Queue default is paused since").wait_for()
    row = page.locator('[role="row"]', has_text="deploying the mailer").first
    row.wait_for(state="attached")
    assert row.locator('[role="gridcell"]', has_text=re.compile("^PAUSED$")).count() == 1
    page.wait_for_timeout(800)
    page.screenshot(path=str(ARTIFACTS / "ops-queue-paused.png"), full_page=True)
    with open_queue(str(db), create=False) as queue:
        control = queue.controls()["default"]
        assert control.paused and (control.paused_by, control.pause_reason) == (
            "bob", "deploying the mailer"
        )  # fmt: skip
        assert queue.claim("worker-h", queues=["default"]) == []
    page.get_by_role("button", name="Resume default").click()
    page.get_by_text("Queue default resumed").wait_for()
    with open_queue(str(db), create=False) as queue:
        assert "default" not in queue.controls()
        assert [e.action for e in queue.audit_log(target="queue:default")[:2]] == [
            "resume", "pause"
        ]  # fmt: skip

    page.get_by_role("link", name=re.compile("Live")).click()
    page.get_by_text("Running jobs").first.wait_for()
    page.locator('[role="row"]', has_text="worker-h").first.wait_for(state="attached")
    box = page.get_by_label("Job id")
    box.fill(str(held.id))
    box.press("Enter")
    page.get_by_text(f"Job {held.id} — processing").wait_for()
    page.get_by_text("Running on consumer worker-h").wait_for()
    page.get_by_label("Reason (recorded in the history)").fill("customer withdrew")
    page.get_by_role("button", name="Cancel", exact=True).click()
    page.get_by_text(f"Job {held.id}: cancel → cancelled").wait_for()
    heading = page.get_by_text(f"Job {held.id} — cancelled")
    heading.wait_for()
    heading.scroll_into_view_if_needed()  # the page scrolls inside Streamlit's container
    page.wait_for_timeout(800)
    page.screenshot(path=str(ARTIFACTS / "ops-running-job-cancelled.png"), full_page=True)
    with open_queue(str(db), create=False) as queue:
        with pytest.raises(JobCancelled):  # what the holder's next heartbeat gets
            queue.heartbeat(held.id, held.lease_token or "")
        last = queue.history(held.id)[-1]
        assert (last.action, last.actor, last.detail) == ("cancel", "bob", "customer withdrew")
    page.close()


def test_admin_adds_a_schedule_and_changes_a_runtime_setting(
    consoles: Consoles, browser, seeded: tuple[Path, Path, Seeded]
) -> None:  # type: ignore[no-untyped-def]
    """Issue 12 through the admin console: a schedule added and listed with its next
    run; a runtime setting refused with a bad value, then changed, and audited."""
    db, _, _ = seeded
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1500, "height": 1300})
    page.set_default_timeout(20_000)
    log_in(page, consoles["admin"], "alice", PASSWORDS["alice"])
    page.get_by_text("Dead letter").first.wait_for()

    page.get_by_role("link", name=re.compile("Schedules")).click()
    page.get_by_text("Add a schedule").click()
    page.get_by_label("Name", exact=True).fill("nightly-report")
    page.get_by_label("Cron (minute hour day month weekday)").fill("30 2 * * *")
    page.get_by_label("Timezone", exact=True).fill("Europe/Berlin")
    page.get_by_label("Payload", exact=True).fill("jobs/nightly-report.txt")
    page.get_by_role("button", name="Add schedule").click()
    page.get_by_text("Schedule nightly-report added; next run").wait_for()
    with open_queue(str(db), create=False) as queue:
        schedule = queue.schedule("nightly-report")
    assert schedule.next_run_at is not None and schedule.created_by == "alice"
    row = page.locator('[role="row"]', has_text="nightly-report").first
    row.wait_for(state="attached")
    assert row.locator('[role="gridcell"]', has_text=when(schedule.next_run_at)).count() == 1
    page.wait_for_timeout(800)
    page.screenshot(path=str(ARTIFACTS / "admin-schedules.png"), full_page=True)

    page.get_by_role("link", name=re.compile("Settings")).click()
    page.get_by_text("Change a setting").wait_for()  # max_attempts, the first, is picked
    box = page.get_by_label("New value")
    box.fill("lots")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("Not changed: max_attempts must be a whole number").wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "admin-setting-refused.png"), full_page=True)
    with open_queue(str(db), create=False) as queue:
        assert queue.config_get("max_attempts").source != "database"
    box.fill("8")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("Setting max_attempts is now 8 (database)").wait_for()
    page.locator('[role="row"]', has_text="setting:max_attempts").first.wait_for(state="attached")
    page.wait_for_timeout(800)
    page.screenshot(path=str(ARTIFACTS / "admin-settings.png"), full_page=True)
    with open_queue(str(db), create=False) as queue:
        setting = queue.config_get("max_attempts")
        assert (setting.value, setting.updated_by) == (8, "alice")
        assert queue.audit_log(target="setting:max_attempts")[0].action == "config_set"
    page.close()
