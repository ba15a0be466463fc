"""The Prometheus endpoint every service serves (names and ports: docs/metrics.md)."""

from __future__ import annotations

from loguru import logger
from prometheus_client import Gauge, start_http_server

import services

BUILD_INFO = Gauge("pq_build_info", "pq build, always 1", ["role", "version"])
VERSION = getattr(services, "__version__", "0.1.0")


def start_metrics_server(role: str, port: int, address: str = "127.0.0.1") -> int | None:
    """Serve ``/metrics`` on ``address:port`` in a daemon thread; returns the port.

    Port 0 disables the endpoint. A port already in use is logged as an error and the
    service runs on without metrics: processing jobs matters more than exporting them.
    """
    BUILD_INFO.labels(role=role, version=VERSION).set(1)
    if not port:
        logger.info("metrics disabled (metrics port 0)")
        return None
    try:
        start_http_server(port, addr=address)
    except OSError as error:
        logger.error(
            "metrics endpoint {}:{} unavailable ({}); running without metrics: set"
            " --metrics-port/PQ_METRICS_PORT to a free port, 0 disables",
            address,
            port,
            error.strerror or error,
        )
        return None
    logger.info("metrics on http://{}:{}/metrics", address, port)
    return port
