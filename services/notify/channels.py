"""Channels: apprise clients built from ``PQ_NOTIFY_URLS`` and ``PQ_NOTIFY_CONFIG``.

apprise owns the protocols (SMTP with STARTTLS/TLS and auth, Slack incoming
webhooks, JSON webhooks and ~100 more); pq keeps one client per configured URL so a
failed delivery is retried on that channel alone, and names channels in logs by
apprise's privacy URL (passwords and tokens masked).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import apprise
from loguru import logger

from services.notify.messages import Message
from services.notify.settings import NotifySettings


class ChannelConfigError(ValueError):
    """A configured notification URL or config file cannot be used; the message says which."""


@dataclasses.dataclass(frozen=True)
class Channel:
    name: str  # the privacy URL: safe to log and show
    scheme: str  # metric label: mailto, mailtos, slack, json, ...
    client: Any  # an apprise plugin instance (apprise.plugins.NotifyBase)

    def send(self, message: Message) -> bool:
        """One delivery attempt; True when the channel accepted the message."""
        try:
            return bool(
                self.client.notify(
                    body=message.body, title=message.title, notify_type=message.severity
                )
            )
        except Exception as error:  # a plugin bug must cost one delivery, not the sender
            logger.opt(exception=error).error("channel {} raised: {}", self.name, error)
            return False


def load_channels(settings: NotifySettings) -> list[Channel]:
    """Every channel the settings name; one clear error for a URL or file apprise rejects."""
    _route_apprise_logs()
    clients: list[Any] = []
    for url in settings.urls:
        client = apprise.Apprise.instantiate(url)
        if not client:
            raise ChannelConfigError(
                f"PQ_NOTIFY_URLS: cannot use {_mask(url)!r}: not a valid apprise URL"
                " (check the scheme, host and e-mail addresses)"
            )
        clients.append(client)
    if settings.config_path:
        path = Path(settings.config_path)
        if not path.is_file():
            raise ChannelConfigError(f"PQ_NOTIFY_CONFIG: no such file: {path}")
        config = apprise.AppriseConfig()
        config.add(str(path.resolve()))
        loaded = apprise.Apprise()
        loaded.add(config)
        servers = list(loaded)  # iterating loads the file
        if not servers:
            raise ChannelConfigError(
                f"PQ_NOTIFY_CONFIG: {path} names no valid notification URL"
                " (apprise TEXT or YAML format)"
            )
        clients.extend(servers)
    channels = []
    for client in clients:
        name = client.url(privacy=True)
        channels.append(Channel(name, name.partition("://")[0], client))
    return channels


def _mask(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://…" if rest else url


class _ToLoguru(logging.Handler):
    """apprise logs through the standard library; send its warnings to pq's log."""

    def emit(self, record: logging.LogRecord) -> None:
        level = record.levelname if record.levelno >= logging.WARNING else "DEBUG"
        logger.log(level, "apprise: {}", record.getMessage())


def _route_apprise_logs() -> None:
    apprise_logger = logging.getLogger("apprise")
    if not any(isinstance(h, _ToLoguru) for h in apprise_logger.handlers):
        apprise_logger.addHandler(_ToLoguru())
        apprise_logger.setLevel(logging.INFO)
        apprise_logger.propagate = False
