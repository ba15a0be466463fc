"""Every Grafana panel's query returns data from a real Prometheus scraping real services.

The services run as processes on the host (short intervals, a temp SQLite queue). The
Prometheus config is the repository's prometheus.yml with each DNS discovery replaced by
the processes' addresses; rule files and scrape settings stay as they are. A panel whose
query names a metric nobody exports returns nothing, and fails the test. The dashboards'
JSON itself is checked against Grafana's models in test_dashboard_models.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pqcore import JobState, open_queue
from tests.conftest import ROOT, pq_command, require
from tests.support import free_port, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]

DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
SERVED = "default"  # the producer's queue, the only one the consumers take jobs from
UNSERVED = "dashboard-test"  # the test's own: no consumer competes for its jobs

# Grafana's variables, as Grafana would fill them for a 15 s scrape interval.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",  # max(4 x scrape interval, interval + scrape interval)
    "$__interval": "15s",
    "$__range": "5m",
}


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard, panel title, expression) for every target of every panel."""
    queries = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                assert "$" not in expr, f"{path.name}: unsubstituted variable in {expr}"
                queries.append((path.stem, panel["title"], expr))
    return queries


def http_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def test_dashboards_exist_and_are_provisioned() -> None:
    assert {p.stem for p in DASHBOARDS} >= {"queue-overview", "consumers", "manager"}
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/pq.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    assert panel_queries(), "no panel queries"  # also checks every variable is substituted
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            assert panel["datasource"]["uid"] == uid, (path.name, panel["title"])


@pytest.fixture
def services(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Producer, two consumers and the manager as real processes, each with a metrics port."""
    db = tmp_path / "queue.db"
    jobs = tmp_path / "jobs"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")}  # no shell settings
    env.update(PQ_DB=str(db), PQ_JOBS_DIR=str(jobs), PQ_LOG_DIR=str(tmp_path))
    ports = {
        "manager": [free_port()],
        "producer": [free_port()],
        "consumer": [free_port(), free_port()],
    }
    commands = [
        (
            "manager",
            ports["manager"][0],
            ["--rescue-interval", "1", "--leader-ttl", "5", "--check-interval", "5"],
        ),
        ("producer", ports["producer"][0], ["--interval", "0.5", "--queue", SERVED]),
        *[
            (
                "consumer",
                port,
                ["--work-min", "0.1", "--work-max", "0.4", "--lease", "5", "--queues", SERVED],
            )
            for port in ports["consumer"]
        ],
    ]
    processes = []
    try:
        for role, port, extra in commands:
            log = (tmp_path / f"{role}-{port}.out").open("w")
            processes.append(
                subprocess.Popen(
                    [*pq_command(), role, "--metrics-port", str(port), *extra],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        yield {"db": db, "ports": ports, "processes": processes}
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def prometheus(tmp_path: Path, services: dict[str, Any]) -> Iterator[str]:
    binary = shutil.which("prometheus")
    require(binary is not None, "prometheus missing (Debian package prometheus)")
    assert binary is not None
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    # The consoles' scrape jobs stay out: this test starts no console (their metrics reach
    # Prometheus in tests/containers/test_user_commands.py).
    config["scrape_configs"] = [
        job for job in config["scrape_configs"]
        if "dns_sd_configs" not in job or job["job_name"] in services["ports"]
    ]  # fmt: skip
    for job in config["scrape_configs"]:
        if "dns_sd_configs" not in job:
            continue
        del job["dns_sd_configs"]  # the one change: the processes' addresses for the DNS names
        job["static_configs"] = [
            {"targets": [f"127.0.0.1:{port}" for port in services["ports"][job["job_name"]]]}
        ]
    workdir = tmp_path / "prometheus"
    workdir.mkdir()
    for rule_file in config.get("rule_files", []):
        shutil.copy(PROMETHEUS_DIR / rule_file, workdir / rule_file)
    port = free_port()
    for job in config["scrape_configs"]:
        if job["job_name"] == "prometheus":
            job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.out").open("w")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                    return response.status == 200
            except OSError:
                assert process.poll() is None, (tmp_path / "prometheus.out").read_text()
                return False

        wait_for(ready, 60, "Prometheus ready", interval=1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def query(url: str, expr: str) -> list[Any]:
    data = http_json(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    assert data["status"] == "success", data
    return list(data["data"]["result"])


def test_every_panel_query_returns_data(services: dict[str, Any], prometheus: str) -> None:
    queries = panel_queries()
    assert len(queries) >= 20

    # What only happens on trouble, made to happen without ever competing with the
    # consumers under test: a job whose file does not exist, which a consumer fails for
    # good (the system makes the dead letter; the test only enqueues it), and a job in a
    # queue no consumer serves, claimed by a holder that never returns (the claim cannot
    # lose a race; the manager recovers the job once its 1 s lease expires).
    queue = wait_for(
        lambda: services["db"].exists() and open_queue(str(services["db"])),
        30,
        "the queue database",
        interval=1,
    )
    try:
        lost = queue.enqueue("no-such-file.txt", queue=SERVED, max_attempts=1)
        abandoned = queue.enqueue("abandoned.txt", queue=UNSERVED)
        [held] = queue.claim("vanished-consumer", queues=[UNSERVED], lease_seconds=1)
        assert held.id == abandoned.id
        wait_for(
            lambda: "rescue" in [e.action for e in queue.history(held.id)],
            30,
            "the manager recovering the abandoned job",
            interval=1,
        )
        wait_for(
            lambda: queue.get(lost.id).status is JobState.PERMANENTLY_FAILED,
            30,
            "a consumer dead-lettering the job without a file",
            interval=1,
        )
    finally:
        queue.close()

    targets = f"{prometheus}/api/v1/targets"
    wait_for(
        lambda: (
            all(t["health"] == "up" for t in http_json(targets)["data"]["activeTargets"])
            and len(http_json(targets)["data"]["activeTargets"]) == 5
        ),
        60,
        "all five targets up",
        interval=1,
    )

    def empty_panels() -> list[str]:
        return [
            f"{board} / {title}: {expr}"
            for board, title, expr in queries
            if not query(prometheus, expr)
        ]

    # rate() needs two scrapes inside its window (15 s scrape interval from the repo).
    deadline = time.monotonic() + 120
    while (missing := empty_panels()) and time.monotonic() < deadline:
        time.sleep(3)
    assert not missing, "panels without data:\n" + "\n".join(missing)


def test_a_panel_on_an_unknown_metric_would_fail(prometheus: str) -> None:
    """The check above can fail: a misspelt metric gives an empty result."""
    wait_for(lambda: query(prometheus, "up"), 60, "a first scrape", interval=1)
    assert query(prometheus, "sum(rate(pq_jobs_completd_total[1m]))") == []
