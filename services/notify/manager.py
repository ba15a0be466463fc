"""The manager's hook: ``pq.manager_events`` entry point ``notify`` (root pyproject).

The manager calls ``make_subscriber()`` at start. It returns None (alerts off) when no
channel is configured or ``PQ_NOTIFY=off``; a bad setting is logged and alerts stay
off, because a typo in an alert URL must not stop the manager rescuing jobs.
"""

from __future__ import annotations

import atexit
import os
from typing import TYPE_CHECKING

from loguru import logger

from services.notify.settings import NotifySettings, NotifySettingsError

if TYPE_CHECKING:
    from services.notify.notifier import Notifier

OFF = ("0", "false", "no", "off")


def make_subscriber() -> Notifier | None:
    if os.environ.get("PQ_NOTIFY", "").strip().lower() in OFF:
        logger.info("alerts off (PQ_NOTIFY={})", os.environ["PQ_NOTIFY"])
        return None
    try:
        settings = NotifySettings.from_env()
        if not settings.configured:
            logger.info("alerts off: no channel (set PQ_NOTIFY_URLS or PQ_NOTIFY_CONFIG)")
            return None
    except NotifySettingsError as error:
        logger.error("alerts off: {}", error)
        return None
    # apprise is needed only once a channel is configured: then its absence is an error.
    try:
        from services.notify.channels import ChannelConfigError, load_channels
        from services.notify.notifier import Notifier
    except ImportError as error:
        logger.error(
            "alerts off: channels are configured but apprise is missing ({}); install"
            " 'pq-services[notify]'",
            error,
        )
        return None
    try:
        channels = load_channels(settings)
    except (NotifySettingsError, ChannelConfigError) as error:
        logger.error("alerts off: {}", error)
        return None
    notifier = Notifier(settings, channels)
    # The manager closes its event bus on the way out; this then flushes what the
    # notifier still holds, within PQ_NOTIFY_FLUSH_SECONDS.
    atexit.register(notifier.close)
    logger.info("alerts on: {} channel(s): {}", len(channels), ", ".join(c.name for c in channels))
    return notifier
