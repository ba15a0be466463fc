"""The Queues page of both consoles: counts, pause state and limits per queue; pause and
resume (ops too), limits (admins only), each recorded in the audit trail."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest

from pqcore import Queue
from tests.consoles.conftest import logged_in
from tests.consoles.seeding import Seeded

Inspect = Callable[[], Queue]


def queues_page(app: str, user: str) -> AppTest:
    at = logged_in(app, user)
    at.switch_page("views/queues.py").run()
    assert not at.exception, at.exception
    return at


def rows(at: AppTest) -> dict[str, dict[str, object]]:
    return {r["queue"]: r for r in at.dataframe[0].value.to_dict("records")}


def controls(at: AppTest) -> dict[str, dict[str, object]]:
    """The table of paused and limited queues (absent while none is)."""
    if len(at.dataframe) < 2:
        return {}
    return {r["queue"]: r for r in at.dataframe[1].value.to_dict("records")}


@pytest.mark.parametrize(("app", "user"), [("admin", "alice"), ("ops", "bob")])
def test_pause_and_resume_a_queue(
    app: str, user: str, console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    at = queues_page(app, user)
    with inspect_queue() as queue:
        emails = queue.stats("emails").counts
    shown = rows(at)
    assert set(shown) == {"default", "emails"}
    assert shown["emails"]["pending"] == emails["pending"]
    assert shown["emails"]["dead letter"] == emails["permanently_failed"]
    assert shown["emails"]["oldest pending"] != "" and shown["emails"]["done/min"] > 0
    assert shown["emails"]["consumers"] == "1: worker-a"  # worker-b is dead
    assert shown["default"]["consumers"] == "1: worker-a"
    assert controls(at) == {}

    at.selectbox(key="queues_pick").set_value("emails").run()
    at.text_input(key="queues_reason_emails").input("mail server down")
    at.button(key="queues_pause_emails").click().run()
    assert not at.exception and not at.error
    assert "Queue emails paused" in at.success[0].value
    assert controls(at)["emails"]["paused"] == "PAUSED"
    assert controls(at)["emails"]["paused by"] == user
    assert controls(at)["emails"]["reason"] == "mail server down"
    assert "default" not in controls(at)
    with inspect_queue() as queue:
        control = queue.controls()["emails"]
        assert control.paused and control.paused_by == user
        assert control.pause_reason == "mail server down"
        queue.enqueue("jobs/paused.txt", queue="emails")
        assert queue.claim("worker-z", queues=["emails"]) == []  # never claimed from
        assert queue.stats().paused_queues == ["emails"]

    at.button(key="queues_resume_emails").click().run()
    assert "Queue emails resumed" in at.success[0].value
    assert controls(at) == {}
    with inspect_queue() as queue:
        assert "emails" not in queue.controls()
        assert [(e.action, e.actor, e.target) for e in queue.audit_log()[:2]] == [
            ("resume", user, "queue:emails"),
            ("pause", user, "queue:emails"),
        ]
        assert [j.data for j in queue.claim("worker-z", queues=["emails"])] != []


def test_a_paused_queue_shows_on_the_jobs_and_live_pages(
    console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    with inspect_queue() as queue:
        queue.pause("emails", actor="carol")
    for app, user in (("admin", "alice"), ("ops", "bob")):
        at = logged_in(app, user)
        assert any("Paused" in w.value and "emails" in w.value for w in at.warning), app


def test_admin_sets_and_clears_limits(console_env, seeded: Seeded, inspect_queue: Inspect) -> None:
    at = queues_page("admin", "alice")
    at.selectbox(key="queues_pick").set_value("default").run()
    at.text_input(key="queues_concurrency_default").input("2")
    at.text_input(key="queues_key_concurrency_default").input("1")
    at.text_input(key="queues_rate_default").input("100")
    at.text_input(key="queues_rate_period_default").input("60")
    at.button(key="queues_save_default").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Limits of queue default saved" in at.success[0].value
    shown = controls(at)["default"]
    assert (shown["concurrency"], shown["per-key concurrency"]) == ("2", "1")
    assert shown["rate"] == "100 / 60s" and shown["per-key rate"] == ""
    with inspect_queue() as queue:
        control = queue.controls()["default"]
        assert control.concurrency_limit == 2 and control.key_concurrency_limit == 1
        assert control.rate_limit == 100 and control.rate_period == 60
        entry = queue.audit_log(target="queue:default")[0]
        assert (entry.action, entry.actor) == ("set_limits", "alice")

    for box in ("concurrency", "key_concurrency", "rate", "rate_period"):
        at.text_input(key=f"queues_{box}_default").input("")
    at.button(key="queues_save_default").click().run()
    assert controls(at) == {}
    with inspect_queue() as queue:
        assert "default" not in queue.controls()  # nothing holds it any more


@pytest.mark.parametrize(
    ("box", "typed", "message"),
    [
        ("concurrency", "-1", "concurrency limit must be from 0"),
        ("rate", "lots", "must be a whole number"),
        ("rate_period", "0", "rate period must be more than 0"),
    ],
)
def test_a_bad_limit_is_one_clear_error_and_changes_nothing(
    box: str, typed: str, message: str, console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    at = queues_page("admin", "alice")
    at.selectbox(key="queues_pick").set_value("default").run()
    at.text_input(key="queues_rate_default").input("5")
    at.text_input(key=f"queues_{box}_default").input(typed)
    at.button(key="queues_save_default").click().run()
    assert len(at.error) == 1 and message in at.error[0].value, [e.value for e in at.error]
    assert not at.exception
    with inspect_queue() as queue:
        assert queue.controls() == {} and queue.audit_log() == []


def test_ops_may_pause_but_not_change_limits(console_env, seeded: Seeded) -> None:
    at = queues_page("ops", "bob")
    at.selectbox(key="queues_pick").set_value("default").run()
    keys = {w.key for w in [*at.button, *at.text_input]}
    assert "queues_pause_default" in keys
    assert not [k for k in keys if k and k.startswith("queues_concurrency")]
    assert not any("Limits" in m.value for m in at.markdown)
