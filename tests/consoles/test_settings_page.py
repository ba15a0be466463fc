"""The admin Settings page: every runtime setting with its value, default, source and
who changed it; a change is validated by pqcore (a bad value is one error, nothing
changed) and lands in the audit trail shown below."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from streamlit.testing.v1 import AppTest

from pqcore import Queue
from tests.consoles.conftest import logged_in
from tests.consoles.seeding import Seeded

Inspect = Callable[[], Queue]


def settings_page(user: str = "alice") -> AppTest:
    at = logged_in("admin", user)
    at.switch_page("views/admin_settings.py").run()
    assert not at.exception, at.exception
    return at


def rows(at: AppTest) -> dict[str, dict[str, object]]:
    return {r["setting"]: r for r in at.dataframe[0].value.to_dict("records")}


def set_value(at: AppTest, name: str, value: str) -> AppTest:
    at.selectbox(key="settings_pick").set_value(name).run()
    at.text_input(key=f"settings_value_{name}").input(value)
    return at.button(key="settings_save").click().run()


def test_settings_are_listed_changed_and_audited(
    console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    at = settings_page()
    with inspect_queue() as queue:
        listed = {s.name: s for s in queue.config_list()}
    shown = rows(at)
    assert set(shown) == set(listed)
    assert shown["max_attempts"]["value"] == str(listed["max_attempts"].value)
    assert shown["max_attempts"]["source"] == listed["max_attempts"].source != "database"

    at = set_value(at, "max_attempts", "7")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Setting max_attempts is now 7 (database)" in at.success[0].value
    assert rows(at)["max_attempts"]["value"] == "7"
    assert rows(at)["max_attempts"]["changed by"] == "alice"
    with inspect_queue() as queue:
        setting = queue.config_get("max_attempts")
        assert (setting.value, setting.source, setting.updated_by) == (7, "database", "alice")
        entry = queue.audit_log(target="setting:max_attempts")[0]
        assert (entry.action, entry.actor) == ("config_set", "alice")
        assert queue.enqueue("jobs/after-change.txt").max_attempts == 7  # in effect at once
    audit = at.dataframe[1].value
    newest = audit.iloc[0]
    assert (newest["target"], newest["by"], newest["action"]) == (
        "setting:max_attempts", "alice", "config_set"
    )  # fmt: skip

    at.button(key="settings_reset").click().run()
    assert "(database)" not in at.success[0].value
    with inspect_queue() as queue:
        assert queue.config_get("max_attempts").source != "database"
        assert queue.audit_log(limit=1)[0].action == "config_reset"


@pytest.mark.parametrize(
    ("value", "message"),
    [("lots", "max_attempts must be a whole number"), ("0", "max_attempts must be from 1")],
)
def test_a_bad_value_is_refused_and_changes_nothing(
    value: str, message: str, console_env, seeded: Seeded, inspect_queue: Inspect
) -> None:
    at = set_value(settings_page(), "max_attempts", value)
    assert len(at.error) == 1 and message in at.error[0].value, [e.value for e in at.error]
    assert not at.exception and not at.success
    with inspect_queue() as queue:
        assert queue.config_get("max_attempts").source != "database"
        assert queue.audit_log() == []


def test_ops_sees_the_settings_but_cannot_change_them(console_env, seeded: Seeded) -> None:
    at = settings_page("bob")  # an ops user who logs into the admin console
    assert "max_attempts" in rows(at)
    keys = {w.key for w in [*at.selectbox, *at.button, *at.text_input]}
    assert "settings_pick" not in keys and "settings_save" not in keys
