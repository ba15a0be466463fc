"""Tasks for the fan-out/fan-in chaos test, run by real ``pq consumer --tasks`` processes.

``item`` works a little (long enough to be killed in the middle). ``final`` waits for all
of them (``after=``), counts the items done when it runs, and records that in the
application's own table in the transaction that completes its job: however often a kill
makes it start again, one row commits.
"""

from __future__ import annotations

import time

import pqcore as pq

app = pq.App()  # PQ_DB, as every role of the test's system


@app.task(name="fanout.item", queue="fan", max_attempts=50)
def item(i: int) -> int:
    time.sleep(0.02)
    return i * i


@app.task(name="fanout.final", queue="fan", max_attempts=50, context=True)
def final(ctx: pq.TaskContext, n: int) -> None:
    done_items = ctx.queue.stats("fan").counts["done"]
    time.sleep(0.3)  # a window for the test to kill it while it runs
    conn = app.connect()
    mark = "?" if ctx.queue.backend == "sqlite" else "%s"
    try:
        conn.execute(
            f"INSERT INTO fanin_runs (job_id, items_done, pid) VALUES ({mark}, {mark}, {mark})",
            (ctx.job_id, done_items, __import__("os").getpid()),
        )
        ctx.complete_in(conn, result={"items": n, "done_before_me": done_items})
        conn.commit()
    finally:
        conn.close()
