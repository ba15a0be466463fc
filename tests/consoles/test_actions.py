"""Operator actions from the consoles change the database and are recorded under the
operator's name; role limits hold."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest

from pqcore import JobCancelled, JobState, Queue, Transition
from tests.consoles.conftest import logged_in
from tests.consoles.seeding import Seeded

Inspect = Callable[[], Queue]


def open_job(at: AppTest, job_id: int | str, key: str = "lookup") -> AppTest:
    at.switch_page("views/job.py").run()
    at.text_input(key=f"{key}_id").input(str(job_id))
    return at.run()


def last_event(inspect_queue: Inspect, job_id: int) -> tuple[str, str, str | None]:
    with inspect_queue() as queue:
        event = queue.history(job_id)[-1]
    return event.action, event.actor, event.detail


@pytest.mark.parametrize(
    ("which", "transition", "after"),
    [
        ("dead", Transition.RESUBMIT, JobState.PENDING),
        ("pending", Transition.CANCEL, JobState.CANCELLED),
        ("failed", Transition.MARK_DONE, JobState.DONE),
        ("processing", Transition.MARK_FAILED, JobState.PERMANENTLY_FAILED),
        ("processing", Transition.CANCEL, JobState.CANCELLED),
    ],
)
@pytest.mark.parametrize(("app", "user"), [("admin", "alice"), ("ops", "bob")])
def test_single_job_action_changes_the_job_and_records_the_operator(
    app: str, user: str, which: str, transition: Transition, after: JobState,
    console_env, seeded: Seeded, inspect_queue: Inspect,
) -> None:  # fmt: skip
    job_id = getattr(seeded, which)[0]
    at = open_job(logged_in(app, user), job_id)
    assert at.subheader[0].value.startswith(f"Job {job_id}")
    at.text_input(key=f"lookup_reason_{job_id}").input("checked by hand")
    at.button(key=f"lookup_{transition.value}_{job_id}").click().run()
    assert not at.exception and not at.error
    with inspect_queue() as queue:
        assert queue.get(job_id).status is after
    assert last_event(inspect_queue, job_id) == (transition.value, user, "checked by hand")
    assert f"Job {job_id}: " in at.success[0].value


@pytest.mark.parametrize(("app", "user"), [("admin", "alice"), ("ops", "bob")])
def test_a_running_job_cancelled_in_the_console_fences_its_holder(
    app: str, user: str, console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    with inspect_queue() as queue:
        queue.enqueue("jobs/running.txt", queue="held")
        [held] = queue.claim("worker-z", queues=["held"], lease_seconds=600)
    at = open_job(logged_in(app, user), held.id)
    assert at.subheader[0].value == f"Job {held.id} — processing"
    assert any("Running on consumer worker-z" in c.value for c in at.caption)
    at.button(key=f"lookup_cancel_{held.id}").click().run()
    assert not at.exception and not at.error
    assert "stops it at its next heartbeat" in at.success[0].value
    assert at.subheader[0].value == f"Job {held.id} — cancelled"
    with inspect_queue() as queue:
        with pytest.raises(JobCancelled):  # what the consumer's next heartbeat gets
            queue.heartbeat(held.id, held.lease_token or "")
        with pytest.raises(JobCancelled):
            queue.complete(held.id, held.lease_token or "")
        assert queue.get(held.id).status is JobState.CANCELLED
    assert last_event(inspect_queue, held.id)[:2] == ("cancel", user)


def test_only_the_actions_the_state_allows_are_offered(console_env, seeded: Seeded) -> None:
    at = open_job(logged_in("admin", "alice"), seeded.done[0])
    assert [b.label for b in at.button if b.key and b.key.startswith("lookup_")] == []
    assert "No operator action applies" in at.caption[0].value
    at = open_job(at, seeded.dead[0])
    labels = [b.label for b in at.button if b.key and b.key.startswith("lookup_")]
    assert labels == ["Resubmit", "Mark done"]


@pytest.mark.parametrize("bad", ["abc", "0", "-3", "1; DROP TABLE jobs", "1.5"])
def test_a_bad_job_id_is_one_clear_error(bad: str, console_env, seeded: Seeded) -> None:
    at = open_job(logged_in("ops", "bob"), bad)
    assert len(at.error) == 1 and "is not a job id" in at.error[0].value
    assert not at.exception


def test_an_unknown_job_id_is_reported(console_env, seeded: Seeded) -> None:
    at = open_job(logged_in("ops", "bob"), 999_999)
    assert at.warning[0].value == "There is no job 999999."


def test_a_stale_click_says_who_changed_the_job_and_does_nothing(
    console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    job_id = seeded.pending[0]
    at = open_job(logged_in("admin", "alice"), job_id)
    with inspect_queue() as queue:  # someone else cancels it while the page is open
        queue.cancel(job_id, actor="carol")
    at.text_input(key=f"lookup_reason_{job_id}").input("not needed")
    at.button(key=f"lookup_cancel_{job_id}").click().run()
    [warning] = at.warning
    assert warning.value.startswith(f"Job {job_id} was cancelled by carol at ")
    assert "it is now cancelled. Nothing was done" in warning.value
    assert at.subheader[0].value == f"Job {job_id} — cancelled"
    assert f"lookup_cancel_{job_id}" not in {b.key for b in at.button}
    with inspect_queue() as queue:
        assert [e.actor for e in queue.history(job_id)] == ["producer", "carol"]


def test_after_an_action_the_job_stays_open_the_result_is_beside_it_and_the_reason_clears(
    console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    job_id = seeded.dead[0]
    at = open_job(logged_in("admin", "alice"), job_id)
    at.text_input(key=f"lookup_reason_{job_id}").input("redrive")
    at.button(key=f"lookup_resubmit_{job_id}").click().run()
    assert at.subheader[0].value == f"Job {job_id} — pending"  # still open, as it is now
    assert at.success[0].value == f"Job {job_id}: resubmit → pending"
    assert at.text_input(key=f"lookup_reason_{job_id}").value == ""
    assert at.query_params["job"] == str(job_id)


def confirm_box(at: AppTest, prefix: str):  # type: ignore[no-untyped-def]
    [box] = [c for c in at.checkbox if c.key and c.key.startswith(prefix)]
    return box


def test_admin_acts_on_a_selection_after_confirming_with_a_reason(
    console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    at = logged_in("admin", "alice")
    at.multiselect(key="jobs_status").set_value([JobState.PERMANENTLY_FAILED]).run()
    assert sorted(at.dataframe[0].value["id"]) == sorted(seeded.dead)
    picked = seeded.dead[:2]
    at.multiselect(key="jobs_picked").set_value(picked).run()
    at.selectbox(key="jobs_picked_action").set_value("Resubmit").run()
    at.text_input(key="jobs_picked_reason").input("upstream fixed").run()
    assert at.button(key="jobs_picked_apply").disabled  # not before the confirmation
    box = confirm_box(at, "jobs_picked_confirm_")
    assert box.label == "Yes, resubmit these 2 jobs"
    box.check().run()
    at.button(key="jobs_picked_apply").click().run()
    assert "applied to 2 of 2" in at.success[0].value
    for job_id in picked:
        assert last_event(inspect_queue, job_id) == ("resubmit", "alice", "upstream fixed")
    with inspect_queue() as queue:
        assert queue.get(seeded.dead[2]).status is JobState.PERMANENTLY_FAILED
    assert at.text_input(key="jobs_picked_reason").value == ""  # cleared after the action


def test_admin_redrives_the_whole_dead_letter_queue_after_confirming(
    console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    at = logged_in("admin", "alice")
    at.switch_page("views/admin_dead_letter.py").run()
    at.selectbox(key="dead_all_action").set_value("Resubmit").run()
    apply = at.button(key="dead_all_apply")
    assert apply.disabled  # not before the confirmation
    assert any("**3** jobs" in m.value for m in at.markdown)
    confirm_box(at, "dead_all_confirm_").check().run()
    at.button(key="dead_all_apply").click().run()
    assert "applied to 3 jobs" in at.success[0].value
    with inspect_queue() as queue:
        assert queue.stats().dead_letter == 0
    for job_id in seeded.dead:
        assert last_event(inspect_queue, job_id)[:2] == ("resubmit", "alice")


def test_a_changed_count_needs_a_new_confirmation(
    console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    at = logged_in("admin", "alice")
    at.switch_page("views/admin_dead_letter.py").run()
    confirm_box(at, "dead_all_confirm_").check().run()
    with inspect_queue() as queue:  # one more job dies between the tick and the click
        queue.mark_failed(seeded.pending[0], actor="carol")
    at.button(key="dead_all_apply").click().run()
    with inspect_queue() as queue:
        assert queue.stats().dead_letter == 4  # nothing redriven
    assert any("**4** jobs" in m.value for m in at.markdown)
    assert not confirm_box(at, "dead_all_confirm_").value
    assert at.button(key="dead_all_apply").disabled


def test_filter_action_respects_the_filter(
    console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    at = logged_in("admin", "alice")
    at.selectbox(key="jobs_queue").set_value("emails").run()
    at.selectbox(key="jobs_all_action").set_value("Cancel").run()
    confirm_box(at, "jobs_all_confirm_").check().run()
    at.button(key="jobs_all_apply").click().run()
    with inspect_queue() as queue:
        for job_id in seeded.pending + seeded.failed:
            job = queue.get(job_id)
            cancelled = job.status is JobState.CANCELLED
            assert cancelled == (job.queue == "emails"), job


def test_ops_role_cannot_act_in_bulk(console_env, seeded: Seeded) -> None:
    """An ops user who logs into the admin console gets no selection or filter actions."""
    at = logged_in("admin", "bob")
    keys = {w.key for w in [*at.multiselect, *at.selectbox, *at.button, *at.checkbox]}
    assert "jobs_status" in keys  # the browser itself is there
    assert not {"jobs_picked", "jobs_picked_apply", "jobs_all_action", "jobs_all_apply"} & keys
    assert not [e for e in at.expander if "Act on" in e.label]
    at.switch_page("views/admin_dead_letter.py").run()
    keys = {w.key for w in [*at.button, *at.selectbox]}
    assert "dead_all_apply" not in keys and "dead_picked_apply" not in keys
