"""Real alerts from the compose stack: the manager image carries apprise, no `pq`
command warns about a missing module in any image, and a job that enters the
dead-letter queue reaches a real webhook receiver on the project's network (a
container of the local base image, tests/containers/webhook_sink.py). The channel is
set as a user sets it, with ``PQ_STACK_NOTIFY_URLS`` in the env file, which compose.yaml
hands to the manager.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.containers.conftest import Stack, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.slow, pytest.mark.timeout(900)]


def sink_bodies(stack: Stack) -> list[dict[str, Any]]:
    [sink] = stack.containers("alert-sink")
    out = stack.logs(sink)
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [line["body"] for line in lines if "body" in line]


def test_the_manager_sends_a_real_alert_to_a_webhook(stack: Stack) -> None:
    stack.set(
        COMPOSE_PROFILES="alerts",
        PQ_STACK_NOTIFY_URLS="json://alert-sink:8080/hook",
        # The host's own channels, for the local run: they must not reach the containers.
        PQ_NOTIFY_URLS="json://host-only.invalid/hook",
    )
    stack.up("alert-sink", "manager", "consumer")
    [manager] = stack.containers("manager")
    [consumer] = stack.containers("consumer")
    wait_for(
        lambda: "alerts on: 1 channel(s)" in stack.service_logs("manager"),
        "the manager loading its alert channel",
        timeout=60,
    )
    logs = stack.service_logs("manager")
    assert "alerts on: 1 channel(s): json://alert-sink:8080/hook" in logs, logs
    assert "unavailable" not in logs and "apprise is missing" not in logs, logs

    # No pq command warns about a missing module, in the manager image or the others.
    for container in (manager, consumer):
        code, _, err = stack.exec(container, "pq", "--help")
        assert code == 0 and "warning" not in err, err

    # pq notify-test from inside the manager container reaches the receiver.
    trial = stack.exec_ok(manager, "pq", "notify-test")
    assert "1 of 1 channel(s) delivered the test message" in trial, trial
    wait_for(
        lambda: any("test notification" in b.get("title", "") for b in sink_bodies(stack)),
        "the test message at the receiver",
        timeout=30,
    )

    # A job whose file does not exist: the consumer fails it for good, the manager
    # announces the dead letter, and the message names the job.
    job_id = stack.exec_ok(manager, "pq", "enqueue", "missing-invoice.txt").strip()

    def dead_letter_alert() -> dict[str, Any] | None:
        for body in sink_bodies(stack):
            if f"job {job_id} dead-lettered" in body.get("title", "") + body.get("message", ""):
                return body
        return None

    alert = wait_for(dead_letter_alert, "the dead-letter alert at the receiver", timeout=60)
    assert "missing-invoice.txt" in alert["message"], alert
    assert f"Job id: {job_id}" in alert["message"], alert
    metrics = stack.metrics(manager, 9100)
    assert 'pq_notifications_sent_total{channel="json",kind="dead_lettered"} 1.0' in metrics
