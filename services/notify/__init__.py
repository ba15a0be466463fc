"""Alerts: manager events in, email / Slack / webhook messages out (see README, "Alerts")."""

from services.notify.notifier import Notifier
from services.notify.settings import NotifySettings

__all__ = ["Notifier", "NotifySettings"]
