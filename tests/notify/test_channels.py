"""Each channel kind, through apprise, to a real local server: the message a person needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.notify import Notifier, NotifySettings
from services.notify.channels import ChannelConfigError, load_channels
from tests.notify.sinks import HttpSink, SmtpSink, dead_letter_event
from tests.support import wait_for

CONSOLE = "http://console.example:8501/?job={job_id}"


def notifier_for(*urls: str, **settings: object) -> Notifier:
    config = NotifySettings(urls=urls, console_url=CONSOLE, **settings)  # type: ignore[arg-type]
    return Notifier(config, load_channels(config))


def assert_actionable(text: str) -> None:
    """What a person needs to act on a dead-lettered job."""
    assert "Job id: 42" in text
    assert "Payload: jobs/invoice-42.txt" in text
    assert "Error: ValueError: invoice total is negative" in text
    assert "Attempts: 3 of 3" in text
    assert "Console: http://console.example:8501/?job=42" in text


def test_email_over_smtp_carries_subject_and_body(smtp_sink: SmtpSink) -> None:
    url = f"mailto://127.0.0.1:{smtp_sink.port}?from=pq@example.com&to=ops@example.com"
    notifier = notifier_for(url.replace("127.0.0.1", "localhost"))
    notifier.notify(dead_letter_event())
    wait_for(lambda: smtp_sink.messages, 30, "the e-mail to arrive")
    assert notifier.close(10)
    [message] = smtp_sink.messages
    assert message["Subject"] == (
        "[pq] job 42 dead-lettered: ValueError: invoice total is negative"
    )
    assert "ops@example.com" in message["To"]
    body = message.get_body(preferencelist=("plain", "html"))
    assert body is not None
    assert_actionable(body.get_content())


def test_email_with_starttls_and_login(tls_smtp_sink: SmtpSink) -> None:
    # The server refuses mail before STARTTLS and AUTH before TLS, so arrival proves both.
    url = (
        f"mailtos://alerts:s3cret@localhost:{tls_smtp_sink.port}"
        "?mode=starttls&verify=no&from=pq@example.com&to=ops@example.com"
    )
    notifier = notifier_for(url)
    notifier.notify(dead_letter_event())
    wait_for(lambda: tls_smtp_sink.messages, 30, "the e-mail over STARTTLS")
    assert notifier.close(10)
    assert tls_smtp_sink.logins == ["alerts"]
    assert "job 42 dead-lettered" in tls_smtp_sink.messages[0]["Subject"]


def test_email_with_a_wrong_password_is_a_failed_delivery(tls_smtp_sink: SmtpSink) -> None:
    url = (
        f"mailtos://alerts:wrong@localhost:{tls_smtp_sink.port}"
        "?mode=starttls&verify=no&from=pq@example.com&to=ops@example.com"
        "&cto=2"  # after a refused login apprise waits out the socket timeout
    )
    notifier = notifier_for(url, retries=0)
    notifier.notify(dead_letter_event())
    wait_for(lambda: notifier.failed == 1, 30, "the delivery to be given up")
    assert tls_smtp_sink.messages == []
    assert notifier.sent == 0


def test_webhook_receives_json_with_the_job_details(http_sink: HttpSink) -> None:
    notifier = notifier_for(http_sink.url("json"))
    notifier.notify(dead_letter_event())
    wait_for(lambda: http_sink.requests, 30, "the webhook POST")
    assert notifier.close(10)
    [request] = http_sink.requests
    assert request.path == "/hook"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.body["title"].startswith("[pq] job 42 dead-lettered")
    assert request.body["type"] == "failure"
    assert_actionable(request.body["message"])


def test_slack_webhook_receives_slack_format_json(
    http_sink: HttpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apprise.plugins.slack import NotifySlack

    # Slack's host is fixed in apprise; point it at the local server. The client, the
    # URL parsing and the payload are apprise's own.
    monkeypatch.setattr(NotifySlack, "webhook_url", f"http://127.0.0.1:{http_sink.port}/services")
    notifier = notifier_for("https://hooks.slack.com/services/T0001/B0002/XXXXsecretXXXX")
    assert notifier.channels[0].scheme == "slack"
    notifier.notify(dead_letter_event())
    wait_for(lambda: http_sink.requests, 30, "the Slack webhook POST")
    assert notifier.close(10)
    [request] = http_sink.requests
    assert request.path == "/services/T0001/B0002/XXXXsecretXXXX"
    [attachment] = request.body["attachments"]
    assert attachment["title"].startswith("[pq] job 42 dead-lettered")
    assert_actionable(attachment["text"])


def test_config_file_and_env_urls_are_both_channels(http_sink: HttpSink, tmp_path: Path) -> None:
    config = tmp_path / "alerts.yml"
    config.write_text(f"urls:\n  - {http_sink.url('json', '/from-file')}\n")
    settings = NotifySettings.from_env(
        {
            "PQ_NOTIFY_URLS": http_sink.url("json", "/from-env"),
            "PQ_NOTIFY_CONFIG": str(config),
            "PQ_CONSOLE_URL": CONSOLE,
        }
    )
    notifier = Notifier(settings, load_channels(settings))
    notifier.notify(dead_letter_event())
    wait_for(lambda: len(http_sink.requests) == 2, 30, "both channels to receive")
    assert sorted(r.path for r in http_sink.requests) == ["/from-env", "/from-file"]


def test_bad_channel_configuration_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ChannelConfigError, match="not a valid apprise URL"):
        load_channels(NotifySettings(urls=("nonsense://x",)))
    with pytest.raises(ChannelConfigError, match="no such file"):
        load_channels(NotifySettings(config_path=str(tmp_path / "missing.yml")))
    empty = tmp_path / "empty.yml"
    empty.write_text("urls: []\n")
    with pytest.raises(ChannelConfigError, match="names no valid notification URL"):
        load_channels(NotifySettings(config_path=str(empty)))
