"""The Prometheus config and alert rules pass promtool's checks and their unit tests."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import ROOT, require

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"

pytestmark = pytest.mark.acceptance


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    require(tool is not None, "promtool missing (Debian package prometheus)")
    assert tool is not None
    return subprocess.run(
        [tool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=60
    )


def test_config_is_valid() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 rules found" in result.stdout


def test_alert_unit_tests_pass() -> None:
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr
