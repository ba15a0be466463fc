"""Dependencies under chaos: a fan-out of 200 task jobs and a final job that waits for
all of them, run by real consumers SIGKILLed at random (and the final's own consumer
killed while it runs). The final job commits its effect exactly once, after every item
was done; the figures (kills, redeliveries, timings from the history) are printed."""

from __future__ import annotations

import random
import signal
import time
from typing import Any

import pytest

from pqcore import JobState
from tests.backends import BackendHandle
from tests.chaos import fanout_tasks
from tests.services.system import Proc, System, pid_of

ITEMS = 200
CONSUMERS = 3
CONSUMER_ARGS = ("--tasks", "tests.chaos.fanout_tasks", "--queues", "fan", "--lease", 2,
                 "--grace", 1, "--batch", 4)  # fmt: skip
MANAGER_ARGS = ("--rescue-interval", 0.3, "--check-interval", 1, "--leader-ttl", 2,
                "--consumer-timeout", 5)  # fmt: skip


def app_connection(backend: BackendHandle) -> Any:
    if backend.name == "sqlite":
        import sqlite3

        return sqlite3.connect(backend.url, timeout=10)
    import psycopg

    return psycopg.connect(backend.url)


@pytest.mark.slow
def test_a_fan_in_job_runs_once_after_every_item_while_consumers_are_killed(
    system: System, backend: BackendHandle
) -> None:
    rng = random.Random(13)
    with app_connection(backend) as conn:
        conn.execute("CREATE TABLE fanin_runs (job_id INTEGER, items_done INTEGER, pid INTEGER)")
        conn.commit()
    fanout_tasks.app.use(system.queue)
    items = fanout_tasks.app.enqueue_many([fanout_tasks.item.request(i) for i in range(ITEMS)])
    final = fanout_tasks.final.enqueue(ITEMS, after=items)
    started = time.monotonic()
    consumers: list[Proc] = [system.start("consumer", *CONSUMER_ARGS) for _ in range(CONSUMERS)]
    system.start("manager", *MANAGER_ARGS)
    kills = 0
    final_holder_killed = False
    deadline = time.monotonic() + 55
    while not (job := system.queue.get(final.id)).status.is_final:
        if time.monotonic() > deadline:
            stats = system.queue.stats("fan")
            raise AssertionError(f"the final job did not finish in time: {job} {stats}"
                                 f" {system.queue.doctor()}")  # fmt: skip
        if job.status is JobState.PROCESSING and not final_holder_killed and job.consumer_id:
            victims = [i for i, c in enumerate(consumers) if c.pid == pid_of(job.consumer_id)]
            final_holder_killed = bool(victims)
            time.sleep(0.02)  # (its holder may be one killed already: the lease runs out)
        else:
            time.sleep(rng.uniform(0.1, 0.4))
            # Only consumers that have done work since they started: on a loaded machine a
            # restart takes seconds, and killing them by the clock (once "up 1.5 s") once
            # killed each before it finished a job (32 of 200 items in 55 s).
            working = {c.pid for c in system.queue.consumers() if c.jobs_done > 0}
            grown = [i for i, c in enumerate(consumers) if c.pid in working]
            victims = [rng.choice(grown)] if grown else []
        for victim in victims:
            consumers[victim].signal(signal.SIGKILL)
            consumers[victim].wait(10)
            kills += 1
            consumers[victim] = system.start("consumer", *CONSUMER_ARGS)
    elapsed = time.monotonic() - started
    system.stop_all(signal.SIGTERM)
    assert job.status is JobState.DONE, job

    queue = system.queue
    done_at = []
    redeliveries = 0
    for handle in items:
        history = queue.history(handle.id)
        assert queue.get(handle.id).status is JobState.DONE
        assert [e.to_status for e in history].count(JobState.DONE) == 1
        redeliveries += max(0, [e.action for e in history].count("claim") - 1)
        done_at.append(next(e for e in history if e.to_status is JobState.DONE))
    history = queue.history(final.id)
    claims = [e for e in history if e.action == "claim"]
    [completed] = [e for e in history if e.to_status is JobState.DONE]
    last_item = max(done_at, key=lambda e: e.id)
    assert all(c.id > last_item.id and c.at >= last_item.at for c in claims)
    with app_connection(backend) as conn:
        runs = conn.execute("SELECT job_id, items_done FROM fanin_runs").fetchall()
    assert [tuple(r) for r in runs] == [(final.id, ITEMS)]  # one committed run, after all
    assert queue.get(final.id).result_value() == {"items": ITEMS, "done_before_me": ITEMS}
    assert system.doctor().returncode == 0
    print(
        f"\nCHAOS fan-in {backend.name}: items={ITEMS} consumer_kills={kills}"
        f" final_holder_killed={final_holder_killed} item_redeliveries={redeliveries}"
        f" final_claims={len(claims)} final_committed_runs={len(runs)}"
        f" last_item_done->final_claimed={claims[0].at - last_item.at:.3f}s"
        f" final_claimed->done={completed.at - claims[-1].at:.3f}s elapsed={elapsed:.1f}s"
    )
    assert kills > 0
