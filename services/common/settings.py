"""Flags with ``PQ_*`` environment defaults, shared by every service.

Every setting is a flag whose default comes from its environment variable, so
``--interval 2`` and ``PQ_INTERVAL=2`` mean the same and flags win. argparse
converts string defaults with the flag's type, so a bad ``PQ_*`` value is reported
like a bad flag: one clear error naming the setting.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import typing
from typing import Any

from loguru import logger

from pqcore import DatabaseUnavailable, Queue, QueueSettings, open_queue
from services.common import liveness
from services.common.liveness import DEFAULT_TIMEOUT_SECONDS
from services.common.signals import StopRequest
from services.common.storage import CountingQueue, count, kind_of


def add_setting(
    parser: argparse.ArgumentParser,
    flag: str,
    env: str,
    default: Any,
    help: str,
    *,
    type: Any = str,
    empty_is_a_value: bool = False,
) -> None:
    """Add ``flag`` whose default is ``$env`` when set, else ``default``.

    An empty ``$env`` counts as unset, unless ``empty_is_a_value`` (``PQ_LOG_DIR=""``
    disables the log file, as ``--log-dir=`` does)."""
    raw = os.environ.get(env)
    unset = raw is None or (raw == "" and not empty_is_a_value)
    value = default if unset else raw
    shown = "none" if default is None else default
    extra: dict[str, Any] = {"nargs": "?", "const": True} if type is env_flag else {}
    parser.add_argument(
        flag,
        type=type,
        default=value,
        metavar=env.removeprefix("PQ_"),
        help=f"{help} (env {env}, default {shown})",
        **extra,
    )


def env_flag(value: str | bool) -> bool:
    """A yes/no setting: 1/true/yes/on or 0/false/no/off."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected yes or no, not {value!r}")


LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


def log_level(value: str) -> str:
    """A loguru level name, any case."""
    level = value.strip().upper()
    if level not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(LOG_LEVELS)}, not {value!r}")
    return level


def positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {value}")
    return number


def non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return number


def port_number(value: str) -> int:
    number = int(value)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0-65535 (0 disables), not {value}")
    return number


def add_common_settings(parser: argparse.ArgumentParser, *, metrics_port: int) -> None:
    """The settings every service has: database, metrics endpoint, logging."""
    # SUPPRESS: under `pq`, the top-level `--db` stays visible when this one is absent.
    parser.add_argument(
        "--db",
        default=argparse.SUPPRESS,
        help="queue database: a path, sqlite:///path or postgresql://... "
        "(env PQ_DB, default var/queue.db)",
    )
    add_setting(
        parser,
        "--metrics-port",
        "PQ_METRICS_PORT",
        metrics_port,
        "Prometheus metrics port; 0 disables",
        type=port_number,
    )
    add_setting(
        parser,
        "--metrics-address",
        "PQ_METRICS_ADDRESS",
        "127.0.0.1",
        "address the metrics endpoint binds (0.0.0.0 in containers)",
    )
    add_setting(
        parser,
        "--log-dir",
        "PQ_LOG_DIR",
        "logs",
        "directory of the per-component log file; empty disables the file",
        empty_is_a_value=True,
    )
    add_setting(
        parser,
        "--liveness-timeout",
        "PQ_LIVENESS_TIMEOUT",
        DEFAULT_TIMEOUT_SECONDS,
        "/healthz answers 503 when the main loop has not beaten for this many seconds",
        type=positive_float,
    )
    add_setting(
        parser,
        "--log-level",
        "PQ_LOG_LEVEL",
        "INFO",
        "DEBUG, INFO, WARNING or ERROR",
        type=log_level,
    )
    add_setting(
        parser,
        "--stderr-log-level",
        "PQ_LOG_STDERR_LEVEL",
        None,
        "level of the lines also written to stderr when there is a log file (none: the"
        " --log-level); supervisor's configuration sets WARNING, the file has every line",
        type=log_level,
    )
    add_setting(
        parser,
        "--log-json",
        "PQ_LOG_JSON",
        False,
        "write JSON lines instead of text",
        type=env_flag,
    )


def open_service_queue(
    args: argparse.Namespace, *, stop: StopRequest | None = None, **overrides: Any
) -> Queue:
    """Open the queue from ``--db``/``PQ_DB`` plus per-service overrides of queue settings.

    With ``stop``, a database that cannot be reached yet (PostgreSQL still starting or
    down) is waited for — logged, retried with backoff — rather than exiting and
    leaving the restarts to supervisor or Docker; a stop request ends the wait
    (``DatabaseUnavailable`` is then raised). Other errors (a wrong URL or password, a
    schema too new) still end the service at once."""
    settings = QueueSettings.from_env(db=getattr(args, "db", None), **overrides)
    delay = 0.5
    while True:
        try:
            queue: Any = CountingQueue(open_queue(settings.db, settings=settings))
            return typing.cast(Queue, queue)  # counts errors, otherwise a Queue
        except DatabaseUnavailable as error:
            if stop is None or stop.requested:
                raise
            count(kind_of(error))
            logger.warning("cannot open the queue yet: {}; retrying in {:.1f}s", error, delay)
            liveness.beat()
            if stop.wait(delay):
                raise
            delay = min(delay * 2, 10.0)


def process_id(role: str | None = None) -> str:
    """``<hostname>-<pid>-<4 random hex>``: distinct per container replica and per restart."""
    name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
    return f"{role}-{name}" if role else name


def add_jobs_dir(parser: argparse.ArgumentParser) -> None:
    add_setting(
        parser,
        "--jobs-dir",
        "PQ_JOBS_DIR",
        "var/jobs",
        "directory of the job files; payloads are paths relative to it",
    )
