"""Runtime settings (pqcore.runtime): stored, validated, audited, picked up by running
queues without a restart, on every backend."""

from __future__ import annotations

import json

import pytest

import pqcore.runtime
from pqcore import InvalidArgument, JobState, Queue
from tests.backends import FakeClock, QueueMaker
from tests.conformance.helpers import claim_one, token


@pytest.fixture(autouse=True)
def quick_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pqcore.runtime, "RUNTIME_REFRESH_SECONDS", 0.0)


def test_a_setting_set_by_one_process_is_used_by_another_running_one(
    make_queue: QueueMaker, clock: FakeClock
) -> None:
    operator, producer = make_queue(clock=clock), make_queue(clock=clock)
    assert producer.enqueue("before").max_attempts == producer.settings.max_attempts
    shown = operator.config_set("max_attempts", "2", actor="alice")
    assert (shown.value, shown.source, shown.updated_by) == (2, "database", "alice")
    assert producer.enqueue("after").max_attempts == 2

    operator.config_set("backoff_base_seconds", 1, actor="alice")
    operator.config_set("backoff_cap_seconds", 1.5, actor="alice")
    job = claim_one(producer)
    failed = producer.fail(job.id, token(job), "boom")
    assert failed.status is JobState.FAILED
    assert 0 < failed.run_at - clock() <= 1.5  # the new cap, not the default hour

    reset = operator.config_reset("max_attempts", actor="bob")
    assert reset.source in {"default", "environment"} and reset.value == reset.default
    assert producer.enqueue("reset").max_attempts == producer.settings.max_attempts
    trail = [(e.actor, e.action, e.target) for e in operator.audit_log(limit=3)]
    assert trail[0] == ("bob", "config_reset", "setting:max_attempts")
    last_set = operator.audit_log(target="setting:max_attempts")[-1]
    assert (json.loads(last_set.new_value or "null"), last_set.old_value) == (2, None)


def test_service_settings_fall_back_to_the_callers_default(queue: Queue) -> None:
    assert queue.runtime_value("stall_timeout", 120.0) == 120.0
    queue.config_set("stall_timeout", "60", actor="alice")
    assert queue.runtime_value("stall_timeout", 120.0) == 60.0
    listed = {s.name: s for s in queue.config_list()}
    assert listed["stall_timeout"].value == 60.0 and listed["retention"].source == "default"


def test_queue_limits_are_settings_too(queue: Queue) -> None:
    queue.enqueue("x", queue="email")
    shown = queue.config_set("queue.email.concurrency", "3", actor="alice")
    assert shown.value == 3 and queue.controls()["email"].concurrency_limit == 3
    assert "queue.email.concurrency" in {s.name for s in queue.config_list()}
    queue.config_set("queue.email.concurrency", "none", actor="alice")
    assert queue.controls() == {}


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("max_attempts", "three", "max_attempts must be a whole number, not 'three'"),
        ("max_attempts", "2.5", "must be a whole number"),
        ("max_attempts", 0, "max_attempts must be from 1 to 1000, not 0"),
        ("lease_seconds", "nan", "lease_seconds must be from 1"),
        ("backoff_base_seconds", 7200, "must not exceed backoff_cap_seconds"),
        ("no_such_setting", 1, "unknown setting 'no_such_setting'"),
        ("queue.email.speed", 1, "unknown queue setting"),
        ("queue.email.concurrency", "-1", "concurrency limit must be from 0"),
        ("queue.email.concurrency", "lots", "concurrency must be a whole number"),
    ],
)
def test_a_bad_value_is_refused_with_its_reason_and_changes_nothing(
    queue: Queue, name: str, value: object, message: str
) -> None:
    before = queue.config_list()
    with pytest.raises(InvalidArgument, match=message):
        queue.config_set(name, value, actor="alice")  # type: ignore[arg-type]
    assert queue.config_list() == before
    assert queue.audit_log() == []
