"""`pq manager` / `python -m services.manager`."""

from __future__ import annotations

import argparse
from typing import Any

from loguru import logger

from services.common.entry import module_main, register_service
from services.common.metrics import start_metrics_server
from services.common.settings import (
    add_common_settings,
    add_setting,
    non_negative_float,
    open_service_queue,
    positive_float,
    process_id,
)
from services.common.signals import STOP_SECONDS, StopRequest

HELP = "rescue stalled jobs, schedule retries, watch consumers (one elected leader acts)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_settings(parser, metrics_port=9100)
    add_setting(
        parser,
        "--check-interval",
        "PQ_CHECK_INTERVAL",
        300.0,
        "seconds between health checks (stall timeout, retention, thresholds)",
        type=positive_float,
    )
    add_setting(
        parser,
        "--rescue-interval",
        "PQ_RESCUE_INTERVAL",
        5.0,
        "seconds between rescues of expired leases and due retries",
        type=positive_float,
    )
    add_setting(
        parser,
        "--stall-timeout",
        "PQ_STALL_TIMEOUT",
        3600.0,
        "take back jobs processing longer than this, even if heartbeating",
        type=positive_float,
    )
    add_setting(
        parser,
        "--consumer-timeout",
        "PQ_CONSUMER_TIMEOUT",
        90.0,
        "declare a consumer dead after this many seconds without a heartbeat",
        type=positive_float,
    )
    add_setting(
        parser,
        "--retention",
        "PQ_RETENTION",
        0.0,
        "purge done jobs finished longer ago than this many seconds; 0 keeps them",
        type=non_negative_float,
    )
    add_setting(
        parser,
        "--leader-ttl",
        "PQ_LEADER_TTL",
        15.0,
        "leadership lease; a crashed leader is replaced within this time",
        type=positive_float,
    )
    add_setting(
        parser,
        "--oldest-pending-threshold",
        "PQ_OLDEST_PENDING_THRESHOLD",
        600.0,
        "event when the oldest pending job waited longer (seconds; 0 disables)",
        type=non_negative_float,
    )
    add_setting(
        parser,
        "--backlog-threshold",
        "PQ_BACKLOG_THRESHOLD",
        1000,
        "event when more jobs than this are pending (0 disables)",
        type=int,
    )
    add_setting(
        parser,
        "--schedule-interval",
        "PQ_SCHEDULE_INTERVAL",
        1.0,
        "seconds between passes enqueueing the due ticks of periodic jobs (pq schedule)",
        type=positive_float,
    )
    add_setting(
        parser,
        "--misfire-grace",
        "PQ_MISFIRE_GRACE",
        60.0,
        "a tick older than this when handled was missed: the schedule's catch-up policy"
        " applies (1-3600 s)",
        type=positive_float,
    )


def run(args: argparse.Namespace) -> int:
    # Imported here: `pq` loads every service's parser, and each process must
    # register only its own role's metrics.
    from services.manager.events import BUS
    from services.manager.manager import Manager, ManagerSettings
    from services.manager.metrics import register_queue_collector
    from services.manager.schedule_metrics import register_schedule_collector

    try:
        settings = ManagerSettings(
            check_interval=args.check_interval,
            rescue_interval=args.rescue_interval,
            stall_timeout=args.stall_timeout,
            consumer_timeout=args.consumer_timeout,
            retention=args.retention,
            leader_ttl=args.leader_ttl,
            oldest_pending_threshold=args.oldest_pending_threshold,
            backlog_threshold=args.backlog_threshold,
            schedule_interval=args.schedule_interval,
            misfire_grace=args.misfire_grace,
        )
    except ValueError as error:
        raise SystemExit(f"pq manager: {error}") from None
    stop = StopRequest().install(exit_within=STOP_SECONDS, signals_off_main_thread=True)
    manager_id = process_id("manager")
    with open_service_queue(args, stop=stop) as queue:
        register_queue_collector(lambda: open_service_queue(args))
        register_schedule_collector(lambda: open_service_queue(args))
        start_metrics_server("manager", args.metrics_port, args.metrics_address)
        BUS.load_entry_points()
        logger.info(
            "manager {} started: db={} rescue every {}s, health check every {}s, stall timeout {}s",
            manager_id,
            queue.driver.where,  # a URL without its password
            settings.rescue_interval,
            settings.check_interval,
            settings.stall_timeout,
        )
        return Manager(queue, settings, manager_id=manager_id, stop=stop).run()


def register(subparsers: Any) -> None:
    register_service(subparsers, "manager", HELP, add_arguments, run)


def main(argv: list[str] | None = None) -> int:
    return module_main("manager", HELP, add_arguments, run, argv)
