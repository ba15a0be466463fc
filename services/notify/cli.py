"""`pq notify-test`: one test message through every configured channel.

Exit codes: 0 every channel accepted it, 1 at least one failed, 2 nothing is
configured or the configuration is invalid.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "send a test message through every configured alert channel (PQ_NOTIFY_URLS/CONFIG)"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("notify-test", help=HELP, description=HELP)
    parser.add_argument(
        "--url",
        action="append",
        default=None,
        metavar="URL",
        help="an apprise URL to test instead of PQ_NOTIFY_URLS (repeat for several)",
    )
    parser.add_argument(
        "--config", default=None, metavar="FILE", help="an apprise config file (PQ_NOTIFY_CONFIG)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at registration: `pq` registers every command at start, and an
    # image without the notify extra (consumer, producer) must not warn on every command.
    from services.common.logs import setup_logging
    from services.notify.settings import NotifySettings, NotifySettingsError

    try:
        from services.notify.channels import ChannelConfigError, load_channels
        from services.notify.messages import trial_message
        from services.notify.notifier import Notifier
    except ImportError as error:
        print(
            f"pq notify-test: error: alerts need apprise ({error}); install"
            " 'pq-services[notify]' (the manager image has it)",
            file=sys.stderr,
        )
        return 2

    setup_logging("notify-test", log_dir=None, level="WARNING")
    try:
        settings = NotifySettings.from_env()
        if args.url or args.config:
            settings = NotifySettings(
                urls=tuple(args.url or ()),
                config_path=args.config,
                console_url=settings.console_url,
            )
        if not settings.configured:
            print(
                "pq notify-test: no channel configured: set PQ_NOTIFY_URLS or"
                " PQ_NOTIFY_CONFIG (or pass --url/--config)",
                file=sys.stderr,
            )
            return 2
        channels = load_channels(settings)
    except (NotifySettingsError, ChannelConfigError) as error:
        print(f"pq notify-test: error: {error}", file=sys.stderr)
        return 2
    results = Notifier(settings, channels).send_now(trial_message(settings.console_url))
    for name, ok in results.items():
        print(f"{'ok    ' if ok else 'FAILED'} {name}")
    failed = sum(not ok for ok in results.values())
    print(f"{len(results) - failed} of {len(results)} channel(s) delivered the test message")
    return 1 if failed else 0
