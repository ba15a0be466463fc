"""`pq consumer` / `python -m services.consumer`."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from loguru import logger

from pqcore import InvalidArgument
from pqcore.worker import DEFAULT_BATCH
from services.common.entry import module_main, register_service
from services.common.metrics import start_metrics_server
from services.common.settings import (
    add_common_settings,
    add_jobs_dir,
    add_setting,
    non_negative_float,
    open_service_queue,
    positive_float,
    process_id,
)
from services.common.signals import StopRequest

HELP = "claim jobs, run their handler (default: append a completion line to the job file)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_settings(parser, metrics_port=9102)
    add_setting(
        parser,
        "--metrics-port-offset",
        "PQ_METRICS_PORT_OFFSET",
        0,
        "added to a non-zero metrics port (supervisor passes the process number)",
        type=int,
    )
    add_jobs_dir(parser)
    add_setting(
        parser,
        "--work-min",
        "PQ_WORK_MIN",
        7.0,
        "shortest simulated work, seconds",
        type=non_negative_float,
    )
    add_setting(
        parser,
        "--work-max",
        "PQ_WORK_MAX",
        15.0,
        "longest simulated work, seconds",
        type=non_negative_float,
    )
    add_setting(
        parser,
        "--lease",
        "PQ_LEASE_SECONDS",
        30.0,
        "lease per claim, seconds; heartbeats extend it every lease/3",
        type=positive_float,
    )
    add_setting(
        parser,
        "--grace",
        "PQ_GRACE_SECONDS",
        15.0,
        "on SIGTERM, finish the current job if it can end within this many seconds,"
        " else release it at once",
        type=non_negative_float,
    )
    add_setting(
        parser,
        "--queues",
        "PQ_QUEUES",
        "",
        "comma-separated queues to take jobs from; empty: every queue",
    )
    add_setting(
        parser,
        "--batch",
        "PQ_CONSUMER_BATCH",
        # pqcore's Worker default (128). A batch is one commit and one round of job-file
        # fsyncs from SYNC_THREADS threads: four consumers at zero work, 5,000 jobs, FULL,
        # 2 cores, ran about 8,600 jobs/s at 32, 11,200 at 128, no more at 256. The cost:
        # a consumer killed between its claim and the work holds up to this many
        # unstarted jobs until they are rescued (never more than a second's worth).
        DEFAULT_BATCH,
        "the most jobs one claim takes; a consumer claims fewer when its jobs are long"
        " (only what it expects to start within a second)",
        type=int,
    )
    add_setting(
        parser,
        "--handler-modules",
        "PQ_HANDLER_MODULES",
        "",
        "comma-separated modules to import; they call register_handler()",
    )
    add_setting(
        parser,
        "--tasks",
        "PQ_TASKS",
        "",
        "comma-separated modules to import whose @app.task functions this consumer runs"
        " (task jobs; every other payload goes to the handlers)",
    )


def run(args: argparse.Namespace) -> int:
    # Imported here: `pq` loads every service's parser, and each process must
    # register only its own role's metrics.
    from services.consumer.consumer import Consumer, ConsumerSettings

    for name in filter(None, (m.strip() for m in args.handler_modules.split(","))):
        importlib.import_module(name)
    task_modules = [m.strip() for m in args.tasks.split(",") if m.strip()]
    declared = import_task_modules(task_modules)
    queues = tuple(q.strip() for q in args.queues.split(",") if q.strip()) or None
    try:
        settings = ConsumerSettings(
            Path(args.jobs_dir),
            work_min=args.work_min,
            work_max=args.work_max,
            lease_seconds=args.lease,
            grace_seconds=args.grace,
            queues=queues,
            batch=args.batch,
        )
        settings.check_liveness_timeout(args.liveness_timeout)
    except ValueError as error:
        raise SystemExit(f"pq consumer: {error}") from None
    stop = StopRequest().install(exit_within=settings.stop_deadline, signals_off_main_thread=True)
    consumer_id = process_id()
    port = args.metrics_port + args.metrics_port_offset if args.metrics_port else 0
    start_metrics_server("consumer", port, args.metrics_address)
    with open_service_queue(args, stop=stop, lease_seconds=args.lease) as q:
        logger.info(
            "consumer {} started: db={} jobs_dir={} work={}-{}s lease={}s grace={}s",
            consumer_id,
            q.driver.where,  # a URL without its password
            settings.jobs_dir,
            settings.work_min,
            settings.work_max,
            settings.lease_seconds,
            settings.grace_seconds,
        )
        if task_modules:
            logger.info("tasks from {}: {}", ",".join(task_modules), ", ".join(declared) or "none")
        return Consumer(q, settings, consumer_id=consumer_id, stop=stop).run()


def import_task_modules(names: list[str]) -> list[str]:
    """Import the modules named by --tasks (found from the current directory too, as with
    ``python -m``); the names of the tasks declared. A module that cannot be imported is
    bad input: one line, exit 2."""
    from pqcore.tasks import declared_names

    if names and os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` would: your project's modules
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as error:  # ImportError, or the module failed while importing
            raise InvalidArgument(
                f"cannot import task module {name!r}: {type(error).__name__}: {error}"
            ) from None
    return declared_names()


def register(subparsers: Any) -> None:
    register_service(subparsers, "consumer", HELP, add_arguments, run)


def main(argv: list[str] | None = None) -> int:
    return module_main("consumer", HELP, add_arguments, run, argv)
