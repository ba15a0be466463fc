"""Settings from PQ_* variables: defaults, parsing, one clear error per bad value."""

from __future__ import annotations

import pytest

from services.notify.messages import console_link
from services.notify.settings import NotifySettings, NotifySettingsError


def test_urls_split_on_spaces_commas_and_newlines() -> None:
    settings = NotifySettings.from_env(
        {"PQ_NOTIFY_URLS": "json://a/x, mailto://b\n slack://c/d/e", "PQ_NOTIFY_BURST": "9"}
    )
    assert settings.urls == ("json://a/x", "mailto://b", "slack://c/d/e")
    assert settings.burst == 9 and settings.window_seconds == 300.0
    assert settings.configured
    assert not NotifySettings.from_env({}).configured


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PQ_NOTIFY_WINDOW_SECONDS": "0"}, "PQ_NOTIFY_WINDOW_SECONDS must be positive"),
        ({"PQ_NOTIFY_BURST": "0"}, "PQ_NOTIFY_BURST must be at least 1"),
        ({"PQ_NOTIFY_QUEUE_SIZE": "x"}, "PQ_NOTIFY_QUEUE_SIZE must be a number, not 'x'"),
        ({"PQ_NOTIFY_RETRIES": "-1"}, "PQ_NOTIFY_RETRIES must not be negative"),
    ],
)
def test_a_bad_value_names_its_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(NotifySettingsError, match=message):
        NotifySettings.from_env(env)


def test_console_links() -> None:
    assert console_link(None, 5) is None
    assert console_link("http://c:8501/", 5) == "http://c:8501/"
    assert console_link("http://c:8501/?job={job_id}", 5) == "http://c:8501/?job=5"
    assert console_link("http://c:8501/?job={job_id}", None) == "http://c:8501/"
