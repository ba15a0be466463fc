"""The consoles' own metrics: logins, wrong passwords and lockouts, served for Prometheus
on ``PQ_CONSOLE_METRICS_PORT`` (``pq console --metrics-port``; admin 9103, ops 9104 by
default, 0 disables; names in docs/metrics.md)."""

from __future__ import annotations

import os

from loguru import logger
from prometheus_client import Counter, start_http_server

PORT_ENV = "PQ_CONSOLE_METRICS_PORT"
ADDRESS_ENV = "PQ_CONSOLE_METRICS_ADDRESS"
DEFAULT_PORTS = {"admin": 9103, "ops": 9104}

LOGINS = Counter("pq_console_logins_total", "successful console logins", ["console"])
LOGIN_FAILURES = Counter(
    "pq_console_login_failures_total",
    "console logins refused: a wrong user name or password",
    ["console"],
)
LOCKOUTS = Counter(
    "pq_console_login_lockouts_total",
    "times a client was made to wait after repeated wrong passwords for one user name",
    ["console"],
)


def observe_login(console: str, event: str, client: str, name: str, wait: float) -> None:
    """The authenticator's observer: counts every failure, logs and counts each lockout."""
    if event == "failure":
        LOGIN_FAILURES.labels(console=console).inc()
    elif event == "lockout":
        LOCKOUTS.labels(console=console).inc()
        logger.bind(event="console_lockout", console=console, client=client, user=name).warning(
            "console {}: client {} waits {:.0f}s before it may try user {!r} again"
            " (repeated wrong passwords)",
            console,
            client,
            wait,
            name,
        )


def serve_from_env(console: str) -> int | None:
    """Start the metrics endpoint this process's environment asks for (once per process;
    a port in use is logged and the console runs on without it)."""
    raw = os.environ.get(PORT_ENV, "").strip()
    if not raw:
        return None
    try:
        port = int(raw)
    except ValueError:
        logger.error("{} must be a port number, not {!r}; no console metrics", PORT_ENV, raw)
        return None
    if not port:
        return None
    address = os.environ.get(ADDRESS_ENV, "").strip() or "127.0.0.1"
    for counter in (LOGINS, LOGIN_FAILURES, LOCKOUTS):
        counter.labels(console=console)  # every series exists from the start, at 0
    try:
        start_http_server(port, addr=address)
    except OSError as error:
        logger.error("console {} metrics on {}:{} unavailable: {}", console, address, port, error)
        return None
    logger.info("console {} metrics on http://{}:{}/metrics", console, address, port)
    return port
