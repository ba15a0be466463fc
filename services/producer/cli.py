"""`pq producer` / `python -m services.producer`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from loguru import logger

from services.common.entry import module_main, register_service
from services.common.metrics import start_metrics_server
from services.common.settings import (
    add_common_settings,
    add_jobs_dir,
    add_setting,
    non_negative_float,
    open_service_queue,
    process_id,
)
from services.common.signals import STOP_SECONDS, StopRequest

HELP = "write a job file every INTERVAL seconds and enqueue its path"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_settings(parser, metrics_port=9101)
    add_jobs_dir(parser)
    add_setting(
        parser, "--interval", "PQ_INTERVAL", 5.0, "seconds between jobs", type=non_negative_float
    )
    add_setting(
        parser,
        "--count",
        "PQ_COUNT",
        None,
        "stop after this many jobs (0: only reconcile); unset runs forever",
        type=int,
    )
    add_setting(parser, "--queue", "PQ_QUEUE", "default", "queue name the jobs go to")
    add_setting(
        parser,
        "--max-attempts",
        "PQ_MAX_ATTEMPTS",
        5,
        "attempts each job gets before the dead-letter queue",
        type=int,
    )


def run(args: argparse.Namespace) -> int:
    # Imported here: `pq` loads every service's parser, and each process must
    # register only its own role's metrics.
    from services.producer.producer import Producer

    if args.count is not None and args.count < 0:
        raise SystemExit("pq producer: --count must not be negative")
    stop = StopRequest().install(exit_within=STOP_SECONDS, signals_off_main_thread=True)
    producer_id = process_id("producer")
    start_metrics_server("producer", args.metrics_port, args.metrics_address)
    with open_service_queue(args, stop=stop, max_attempts=args.max_attempts) as queue:
        logger.info(
            "producer {} started: db={} jobs_dir={} interval={}s count={}",
            producer_id,
            queue.driver.where,  # a URL without its password
            args.jobs_dir,
            args.interval,
            "unlimited" if args.count is None else args.count,
        )
        Producer(
            queue,
            Path(args.jobs_dir),
            interval=args.interval,
            count=args.count,
            queue_name=args.queue,
            stop=stop,
            producer_id=producer_id,
        ).run()
    return 0


def register(subparsers: Any) -> None:
    register_service(subparsers, "producer", HELP, add_arguments, run)


def main(argv: list[str] | None = None) -> int:
    return module_main("producer", HELP, add_arguments, run, argv)
