"""How a service becomes `pq <name>` and `python -m services.<name>` from one definition."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from loguru import logger

from pqcore import PQError, QueueSettings
from services.common.container import container_database_problem
from services.common.liveness import LIVENESS
from services.common.logs import setup_logging

AddArguments = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


def register_service(
    subparsers: Any, name: str, help: str, add_arguments: AddArguments, run: Run
) -> None:
    parser = subparsers.add_parser(name, help=help, description=help)
    add_arguments(parser)
    parser.set_defaults(func=lambda args: run_service(name, run, args))


def module_main(
    name: str, help: str, add_arguments: AddArguments, run: Run, argv: Sequence[str] | None = None
) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m services.{name}", description=help)
    add_arguments(parser)
    return run_service(name, run, parser.parse_args(argv))


def run_service(name: str, run: Run, args: argparse.Namespace) -> int:
    """Set up logging, run the service, and turn a queue error into one clear line."""
    setup_logging(
        name,
        log_dir=args.log_dir,
        level=args.log_level,
        json=args.log_json,
        stderr_level=args.stderr_log_level,
    )
    LIVENESS.timeout = args.liveness_timeout
    try:
        db = QueueSettings.from_env(db=getattr(args, "db", None)).db
        problem = container_database_problem(db)
        if problem is not None:
            # One line, then a non-zero exit: a private database must never look healthy.
            logger.error("{} refused to start: {}", name, problem)
            return 2
        return run(args)
    except PQError as error:
        logger.error("{} stopped: {}", name, error)
        print(f"pq {name}: error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:  # e.g. a jobs directory that cannot be created or written
        where = f" ({error.filename})" if error.filename else ""
        logger.error("{} stopped: {}{}", name, error.strerror or error, where)
        print(f"pq {name}: error: {error.strerror or error}{where}", file=sys.stderr)
        return 1
