"""Alerts: manager events in, email / Slack / webhook messages out (see README, "Alerts").

``Notifier`` and ``NotifySettings`` are loaded on first use: importing the package (as
``pq`` does for its ``notify-test`` command in every image) must not need apprise, which
only the manager image installs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.notify.notifier import Notifier
    from services.notify.settings import NotifySettings

__all__ = ["Notifier", "NotifySettings"]


def __getattr__(name: str) -> Any:
    if name == "Notifier":
        from services.notify.notifier import Notifier

        return Notifier
    if name == "NotifySettings":
        from services.notify.settings import NotifySettings

        return NotifySettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
