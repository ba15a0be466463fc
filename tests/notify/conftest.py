"""Fixtures of the notify tier: local receivers, a backend, and the notifier's log."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from tests.conftest import require
from tests.notify.sinks import HttpSink, SmtpSink


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    sink = HttpSink()
    yield sink
    sink.close()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    yield sink
    sink.close()


@pytest.fixture
def tls_smtp_sink(tmp_path: Path) -> Iterator[SmtpSink]:
    require(shutil.which("openssl") is not None, "openssl (for a test certificate) not found")
    sink = SmtpSink(tls_dir=tmp_path, user="alerts", password="s3cret")
    yield sink
    sink.close()


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink_id = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    yield lines
    logger.remove(sink_id)
