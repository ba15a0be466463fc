"""pq's Grafana dashboards, built with Grafana's own foundation SDK (its Python builders).

The JSON under ``grafana/dashboards/`` is generated from this file and committed, because
Grafana's file provisioning reads it (``grafana/provisioning/dashboards/pq.yml``). Edit
the dashboards here, never the JSON; ``tests/metrics/test_dashboards.py`` fails when a
committed file differs from what this code generates, reads every file back through the
SDK's models and runs every panel's query against a real Prometheus.

    make dashboards                              # rewrite grafana/dashboards/*.json
    .venv/bin/python -m grafana.generate --check # exit 1 when a committed file is stale

The SDK release is pinned in pyproject.toml to the Grafana version compose.yaml runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ScaleDistributionConfig,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode, ScaleDistribution
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    GridPos,
    Threshold,
    ThresholdsMode,
)

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"
# The provisioned Prometheus (grafana/provisioning/datasources/prometheus.yml).
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="pq-prometheus")
# Five minutes: the alerts' threshold for "jobs pending, nothing claimed".
STUCK_SECONDS = 300.0

Panel = TypeVar("Panel", timeseries.Panel, stat.Panel)


def query(ref_id: str, expr: str, legend: str) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .ref_id(ref_id)
        .expr(expr)
        .legend_format(legend)
        .datasource(PROMETHEUS)
    )


def place(panel: Panel, panel_id: int, title: str, x: int, y: int, w: int) -> Panel:
    """Id, title, datasource and a place on the 24-column grid (every panel 8 high)."""
    return (
        panel.id(panel_id).title(title).datasource(PROMETHEUS).grid_pos(GridPos(x=x, y=y, w=w, h=8))
    )


def base(uid: str, title: str, description: str) -> dashboard.Dashboard:
    """Read-only (provisioned), UTC, the last hour, refreshed every 30 s."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["pq"])
        .timezone("utc")
        .readonly()
        .refresh("30s")
        .time("now-1h", "now")
        .version(1)
    )


def queue_overview() -> dashboard.Dashboard:
    rate = "[$__rate_interval]"
    quantile = (
        "histogram_quantile({q}, sum by (le) (rate(pq_job_processing_seconds_bucket" + rate + ")))"
    )
    return (
        base(
            "pq-queue-overview",
            "pq / Queue overview",
            "Depth, flow, latency and failures of the whole queue.",
        )
        .with_panel(
            place(timeseries.Panel(), 1, "Jobs by status", 0, 0, 12)
            .description(
                "Read from the database by the manager at each scrape. A logarithmic axis"
                " (linear below 1, so empty states sit at 0): three dead letters stay"
                " visible beside a million done jobs."
            )
            .scale_distribution(
                ScaleDistributionConfig().type(ScaleDistribution.SYMLOG).log(10).linear_threshold(1)
            )
            .with_target(query("A", "max by (status) (pq_queue_jobs)", "{{status}}"))
        )
        .with_panel(
            place(timeseries.Panel(), 2, "Enqueued and completed per second", 12, 0, 12)
            .unit("ops")
            .with_target(query("A", f"sum(rate(pq_jobs_enqueued_total{rate}))", "enqueued"))
            .with_target(query("B", f"sum(rate(pq_jobs_completed_total{rate}))", "completed"))
        )
        .with_panel(
            place(
                timeseries.Panel(),
                3,
                "Oldest pending job age and time since the last claim",
                0,
                8,
                8,
            )
            .description(
                "Both read from the database by the manager. Both above 5 minutes: runnable"
                " jobs wait and nobody claims any (alerts PQJobsPendingNothingClaimed /"
                " PQJobsPendingNoConsumer); an old job with recent claims is a slow queue,"
                " not a stuck one."
            )
            .unit("s")
            .thresholds(
                dashboard.ThresholdsConfig()
                .mode(ThresholdsMode.ABSOLUTE)
                .steps([Threshold(color="green"), Threshold(value=STUCK_SECONDS, color="red")])
            )
            .thresholds_style(GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE))
            .with_target(query("A", "max(pq_oldest_pending_age_seconds)", "oldest pending"))
            .with_target(query("B", "max(pq_last_claim_age_seconds)", "since the last claim"))
        )
        .with_panel(
            place(stat.Panel(), 4, "Dead-letter queue", 8, 8, 8).with_target(
                query("A", "max(pq_dead_letter_jobs)", "permanently failed")
            )
        )
        .with_panel(
            place(stat.Panel(), 5, "Stalled jobs (lease expired)", 16, 8, 8).with_target(
                query("A", "max(pq_stalled_jobs)", "stalled")
            )
        )
        .with_panel(
            place(timeseries.Panel(), 6, "Processing time p50 / p95 / p99", 0, 16, 12)
            .unit("s")
            .with_target(query("A", quantile.format(q="0.5"), "p50"))
            .with_target(query("B", quantile.format(q="0.95"), "p95"))
            .with_target(query("C", quantile.format(q="0.99"), "p99"))
        )
        .with_panel(
            place(timeseries.Panel(), 7, "Failures and retries per second", 12, 16, 12)
            .unit("ops")
            .with_target(
                query(
                    "A",
                    f"sum by (retryable) (rate(pq_jobs_failed_total{rate}))",
                    "failed, retryable={{retryable}}",
                )
            )
            .with_target(query("B", f"sum(rate(pq_jobs_retried_total{rate}))", "retries scheduled"))
            .with_target(
                query(
                    "C",
                    f"sum(rate(pq_handler_immediate_retries_total{rate}))",
                    "in-process retries",
                )
            )
        )
    )


def consumers() -> dashboard.Dashboard:
    rate = "[$__rate_interval]"
    return (
        base(
            "pq-consumers",
            "pq / Consumers",
            "Each consumer replica: throughput, busy or idle, heartbeats.",
        )
        .with_panel(
            place(timeseries.Panel(), 1, "Completed per second, per replica", 0, 0, 12)
            .unit("ops")
            .with_target(
                query(
                    "A",
                    f"sum by (instance) (rate(pq_jobs_completed_total{rate}))",
                    "{{instance}}",
                )
            )
        )
        .with_panel(
            place(timeseries.Panel(), 2, "Claimed per second, per replica", 12, 0, 12)
            .unit("ops")
            .with_target(
                query("A", f"sum by (instance) (rate(pq_jobs_claimed_total{rate}))", "{{instance}}")
            )
        )
        .with_panel(
            place(timeseries.Panel(), 3, "Busy (1) or idle (0), per replica", 0, 8, 12).with_target(
                query("A", "max by (instance) (pq_consumer_busy)", "{{instance}}")
            )
        )
        .with_panel(
            place(timeseries.Panel(), 4, "Consumers by state (registered)", 12, 8, 12).with_target(
                query("A", "max by (state) (pq_consumers)", "{{state}}")
            )
        )
        .with_panel(
            place(timeseries.Panel(), 5, "Heartbeat age, per replica", 0, 16, 12)
            .unit("s")
            .with_target(
                query(
                    "A",
                    "time() - max by (instance) (pq_consumer_last_heartbeat_timestamp_seconds)",
                    "{{instance}}",
                )
            )
        )
        .with_panel(
            place(stat.Panel(), 6, "Consumer replicas up", 12, 16, 6).with_target(
                query("A", 'sum(up{job="consumer"})', "up")
            )
        )
        .with_panel(
            place(timeseries.Panel(), 7, "Lease lost (fencing) per second", 18, 16, 6)
            .unit("ops")
            .with_target(query("A", f"sum(rate(pq_lease_lost_total{rate}))", "lease lost"))
        )
    )


def manager() -> dashboard.Dashboard:
    rate = "[$__rate_interval]"
    return (
        base(
            "pq-manager",
            "pq / Manager and recovery",
            "What the elected manager does: recoveries, retries, leadership.",
        )
        .with_panel(
            place(timeseries.Panel(), 1, "Stalled jobs recovered", 0, 0, 12).with_target(
                query(
                    "A",
                    f"sum by (reason) (increase(pq_stalled_jobs_recovered_total{rate}))",
                    "{{reason}}",
                )
            )
        )
        .with_panel(
            place(timeseries.Panel(), 2, "Retries scheduled and jobs dead-lettered", 12, 0, 12)
            .with_target(
                query("A", f"sum(increase(pq_jobs_retried_total{rate}))", "retries scheduled")
            )
            .with_target(
                query(
                    "B",
                    f"sum(increase(pq_jobs_dead_lettered_total{rate}))",
                    "dead-lettered by the manager",
                )
            )
        )
        .with_panel(
            place(timeseries.Panel(), 3, "Leader", 0, 8, 8)
            .description("1 for the manager holding the leadership lease.")
            .with_target(query("A", "max by (instance) (pq_manager_is_leader)", "{{instance}}"))
        )
        .with_panel(
            place(stat.Panel(), 4, "Managers up", 8, 8, 4).with_target(
                query("A", 'sum(up{job="manager"})', "up")
            )
        )
        .with_panel(
            place(timeseries.Panel(), 5, "Maintenance cycle duration p95", 12, 8, 12)
            .unit("s")
            .with_target(
                query(
                    "A",
                    "histogram_quantile(0.95, sum by (le)"
                    f" (rate(pq_manager_cycle_seconds_bucket{rate})))",
                    "p95",
                )
            )
        )
        .with_panel(
            place(timeseries.Panel(), 6, "Maintenance cycles per second", 0, 16, 12)
            .unit("ops")
            .with_target(query("A", f"sum(rate(pq_manager_cycles_total{rate}))", "cycles"))
        )
        .with_panel(
            place(timeseries.Panel(), 7, "Consumers declared dead and done jobs purged", 12, 16, 12)
            .with_target(
                query(
                    "A",
                    f"sum(increase(pq_consumers_marked_dead_total{rate}))",
                    "consumers declared dead",
                )
            )
            .with_target(
                query("B", f"sum(increase(pq_jobs_purged_total{rate}))", "done jobs purged")
            )
        )
    )


# File name (under grafana/dashboards/) -> the code that builds it.
DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    "queue-overview.json": queue_overview,
    "consumers.json": consumers,
    "manager.json": manager,
}


def render(builder: dashboard.Dashboard) -> str:
    """The dashboard as Grafana's JSON model, the way it is committed."""
    return json.dumps(builder.build(), cls=JSONEncoder, indent=2) + "\n"


def generated() -> dict[str, str]:
    return {name: render(build()) for name, build in DASHBOARDS.items()}


def stale(directory: Path = DASHBOARD_DIR) -> list[str]:
    """Files that differ from the code, are missing, or are JSON no code generates."""
    expected = generated()
    problems = [
        name
        for name, text in expected.items()
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]
    problems += sorted(p.name for p in directory.glob("*.json") if p.name not in expected)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a committed file is stale"
    )
    args = parser.parse_args(argv)
    if args.check:
        problems = stale()
        for name in problems:
            print(f"grafana/dashboards/{name}: not what grafana/generate.py makes", file=sys.stderr)
        return 1 if problems else 0
    DASHBOARD_DIR.mkdir(exist_ok=True)
    for name, text in generated().items():
        (DASHBOARD_DIR / name).write_text(text)
        print(f"wrote grafana/dashboards/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
