"""The HTTP endpoint every service serves: ``/metrics`` for Prometheus (names and
ports: docs/metrics.md) and ``/healthz`` for liveness probes (services/common/liveness.py)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from loguru import logger
from prometheus_client import Gauge, make_wsgi_app

import services
from services.common.liveness import LIVENESS, Liveness

BUILD_INFO = Gauge("pq_build_info", "pq build, always 1", ["role", "version"])
VERSION = getattr(services, "__version__", "0.1.0")
HEALTH_PATH = "/healthz"


def start_metrics_server(role: str, port: int, address: str = "127.0.0.1") -> int | None:
    """Serve ``/metrics`` and ``/healthz`` on ``address:port`` in a daemon thread;
    returns the port.

    Port 0 disables the endpoint. A port already in use is logged as an error and the
    service runs on without metrics: processing jobs matters more than exporting them.
    """
    BUILD_INFO.labels(role=role, version=VERSION).set(1)
    if not port:
        logger.info("metrics disabled (metrics port 0)")
        return None
    try:
        server = make_server(
            address, port, health_app(role), _server_class(address), handler_class=_QuietHandler
        )
    except OSError as error:
        logger.error(
            "metrics endpoint {}:{} unavailable ({}); running without metrics: set"
            " --metrics-port/PQ_METRICS_PORT to a free port, 0 disables",
            address,
            port,
            error.strerror or error,
        )
        return None
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    logger.info(
        "metrics on http://{}:{}/metrics, liveness on {} (timeout {}s)",
        address,
        port,
        HEALTH_PATH,
        LIVENESS.timeout,
    )
    return port


Environ = dict[str, Any]
StartResponse = Callable[..., Any]


def health_app(role: str, liveness: Liveness = LIVENESS) -> Callable[..., Iterable[bytes]]:
    """``/healthz`` from ``liveness``; every other path is prometheus_client's app as before."""
    metrics_app = make_wsgi_app()

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != HEALTH_PATH:
            return metrics_app(environ, start_response)  # type: ignore[no-any-return]
        age = round(liveness.age(), 1)
        if liveness.alive():
            status, body = "200 OK", {"status": "ok", "role": role, "last_beat_seconds_ago": age}
        else:
            status = "503 Service Unavailable"
            body = {
                "status": "stalled",
                "role": role,
                "last_beat_seconds_ago": age,
                "timeout_seconds": liveness.timeout,
                "error": f"main loop has not beaten for {age}s (timeout {liveness.timeout}s)",
            }
        data = json.dumps(body).encode()
        start_response(
            status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]

    return app


def _server_class(address: str) -> type[WSGIServer]:
    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True  # a slow scraper never delays exit
        address_family = socket.AF_INET6 if ":" in address else socket.AF_INET

    return Server


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Every scrape and probe would otherwise print a line on stderr."""
