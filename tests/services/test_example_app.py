"""The example application (examples/orders) end to end, through real consumer processes:
its README's commands, one consumer killed in the middle."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from pqcore import JobState
from tests.conftest import ROOT
from tests.services.system import System
from tests.support import wait_for

CONSUMER = ("--tasks", "examples.orders.tasks", "--queues", "orders,reports", "--lease", 2)


@pytest.mark.slow
def test_the_order_example_runs_end_to_end(system: System) -> None:
    consumers = [system.start("consumer", *CONSUMER) for _ in range(2)]
    system.start("manager", "--rescue-interval", 0.3, "--leader-ttl", 2)
    main = subprocess.Popen(
        [sys.executable, "-m", "examples.orders.main", "--orders", "30", "--batch", "monday",
         "--wait", "60"],
        cwd=ROOT, env=system.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(lambda: system.count(JobState.DONE) >= 5, 30, "the first imports")
    consumers[0].signal(signal.SIGKILL)  # one consumer dies half-way; the other carries on
    started = time.monotonic()
    out, err = main.communicate(timeout=90)
    assert main.returncode == 0, err
    enqueued, report = out.strip().splitlines()
    assert enqueued.startswith("enqueued 30 imports and report job ")
    figures = json.loads(report)
    assert (figures["batch"], figures["orders"]) == ("monday", 30)
    report_id = int(enqueued.rsplit(" ", 1)[1])
    job = system.queue.get(report_id)
    assert job.result_value() == figures and job.progress == 1.0
    assert [d.resolution for d in system.queue.dependencies(report_id)] == [JobState.DONE] * 30
    stats = system.queue.stats()
    assert stats.counts["done"] == 31 and stats.total == 31
    assert system.doctor().returncode == 0
    print(f"\nEXAMPLE orders: 30 imports + report, {time.monotonic() - started:.1f}s after a kill")
