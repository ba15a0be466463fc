"""`pq notify-test`: per-channel result lines and an exit code a script can use."""

from __future__ import annotations

import os
import subprocess

from tests.conftest import pq_command
from tests.notify.sinks import HttpSink, SmtpSink, refused_port


def notify_test(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")}
    return subprocess.run(
        [*pq_command(), "notify-test", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **env},
    )


def test_every_channel_delivered_exits_0(http_sink: HttpSink, smtp_sink: SmtpSink) -> None:
    mail = f"mailto://localhost:{smtp_sink.port}?from=pq@example.com&to=ops@example.com"
    result = notify_test(
        PQ_NOTIFY_URLS=f"{http_sink.url()},{mail}", PQ_CONSOLE_URL="http://console.example/"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok     ") == 2
    assert "2 of 2 channel(s) delivered the test message" in result.stdout
    assert http_sink.requests[0].body["title"] == "[pq] test notification"
    assert "Console: http://console.example/" in http_sink.requests[0].body["message"]
    assert smtp_sink.messages[0]["Subject"] == "[pq] test notification"


def test_a_failed_channel_is_named_and_exits_1(http_sink: HttpSink) -> None:
    down = f"json://127.0.0.1:{refused_port()}/hook"
    result = notify_test("--url", http_sink.url(), "--url", down)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith("ok") and f":{http_sink.port}/hook" in line for line in lines)
    assert any(line.startswith("FAILED") and "/hook" in line for line in lines)
    assert "1 of 2 channel(s) delivered the test message" in result.stdout


def test_nothing_configured_or_a_bad_url_exits_2() -> None:
    result = notify_test()
    assert result.returncode == 2
    assert "no channel configured" in result.stderr
    result = notify_test(PQ_NOTIFY_URLS="nonsense://x")
    assert result.returncode == 2
    assert "not a valid apprise URL" in result.stderr
    result = notify_test(PQ_NOTIFY_URLS="json://localhost/x", PQ_NOTIFY_BURST="many")
    assert result.returncode == 2
    assert "PQ_NOTIFY_BURST must be a number, not 'many'" in result.stderr


def test_passwords_are_masked_in_the_report(smtp_sink: SmtpSink) -> None:
    url = f"mailto://bob:hunter2@localhost:{smtp_sink.port}?from=pq@example.com&to=o@example.com"
    result = notify_test("--url", url)
    assert "hunter2" not in result.stdout + result.stderr
