"""The admin Schedules page: each schedule with its cron, timezone, next and last run;
add (bad cron or timezone: one error, nothing added), pause, resume, remove, and open
the job of its last run."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest

from pqcore import Queue
from services.consoles.common import when
from tests.consoles.conftest import logged_in
from tests.consoles.seeding import Seeded

Inspect = Callable[[], Queue]


def schedules_page(user: str = "alice") -> AppTest:
    at = logged_in("admin", user)
    at.switch_page("views/admin_schedules.py").run()
    assert not at.exception, at.exception
    return at


def rows(at: AppTest) -> dict[str, dict[str, object]]:
    return {r["schedule"]: r for r in at.dataframe[0].value.to_dict("records")}


def add(at: AppTest, name: str, cron: str, timezone: str = "UTC") -> AppTest:
    at.text_input(key="schedules_new_name").input(name)
    at.text_input(key="schedules_new_cron").input(cron)
    at.text_input(key="schedules_new_tz").input(timezone)
    at.text_input(key="schedules_new_data").input(f"jobs/{name}.txt")
    return at.button(key="schedules_add_submit").click().run()


def test_add_pause_resume_and_remove_a_schedule(
    console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    at = add(schedules_page(), "nightly", "0 3 * * *", "Europe/Berlin")
    assert not at.exception and not at.error, [e.value for e in at.error]
    with inspect_queue() as queue:
        schedule = queue.schedule("nightly")
        assert queue.audit_log(target="schedule:nightly")[0].actor == "alice"
    assert schedule.next_run_at is not None
    assert f"next run {when(schedule.next_run_at)} UTC" in at.success[0].value
    shown = rows(at)["nightly"]
    assert (shown["cron"], shown["timezone"], shown["state"]) == (
        "0 3 * * *", "Europe/Berlin", "active"
    )  # fmt: skip
    assert shown["next run (UTC)"] == when(schedule.next_run_at)
    local = str(shown["next run (local)"])  # the cron is read in the schedule's timezone
    assert " 03:00 " in local and local.endswith(("CET", "CEST")), local

    at.button(key="schedules_pause_nightly").click().run()
    assert rows(at)["nightly"]["state"] == "PAUSED"
    with inspect_queue() as queue:
        assert queue.schedule("nightly").paused
    at.button(key="schedules_resume_nightly").click().run()
    assert rows(at)["nightly"]["state"] == "active"

    assert at.button(key="schedules_remove_nightly").disabled  # not before the confirmation
    at.checkbox(key="schedules_remove_ok_nightly").check().run()
    at.button(key="schedules_remove_nightly").click().run()
    assert "Schedule nightly removed" in at.success[0].value
    with inspect_queue() as queue:
        assert queue.schedules() == []
        actions = [e.action for e in queue.audit_log(target="schedule:nightly")]
    assert actions == ["schedule_remove", "schedule_resume", "schedule_pause", "schedule_add"]


@pytest.mark.parametrize(
    ("cron", "timezone", "message"),
    [
        ("every minute", "UTC", "invalid cron expression 'every minute'"),
        ("* * * * *", "Mars/Olympus", "unknown timezone 'Mars/Olympus'"),
    ],
)
def test_a_bad_schedule_is_one_error_and_nothing_is_added(
    cron: str, timezone: str, message: str, console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    at = add(schedules_page(), "bad", cron, timezone)
    assert len(at.error) == 1 and message in at.error[0].value, [e.value for e in at.error]
    assert not at.exception
    with inspect_queue() as queue:
        assert queue.schedules() == [] and queue.audit_log() == []


def test_the_job_of_the_last_run_opens_from_the_page(
    console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    with inspect_queue() as queue:
        queue.add_schedule("every-second", "* * * * * *", data="jobs/tick.txt", actor="carol")
        deadline = time.monotonic() + 5
        while not (jobs := queue.enqueue_due_ticks(actor="manager")):
            assert time.monotonic() < deadline, "no tick came due"
            time.sleep(0.2)
        last = queue.schedule("every-second").last_job_id
    assert last == jobs[-1].id
    at = schedules_page()
    assert rows(at)["every-second"]["last job"] == str(last)
    at.toggle(key="schedules_open_every-second").set_value(True).run()
    assert any(h.value.startswith(f"Job {last} — pending") for h in at.subheader)


def test_ops_sees_schedules_but_cannot_change_them(
    console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    with inspect_queue() as queue:
        queue.add_schedule("hourly", "@hourly", data="jobs/h.txt", actor="carol")
    at = schedules_page("bob")
    assert "hourly" in rows(at)
    keys = {w.key for w in [*at.button, *at.text_input]}
    assert not [k for k in keys if k and k.startswith(("schedules_pause", "schedules_new"))]
