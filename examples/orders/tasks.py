"""The example's tasks. Consumers run them with ``pq consumer --tasks examples.orders.tasks``.

``import_order`` stores one order in the application's own ``orders`` table and completes
its job in the same transaction: a consumer killed half-way leaves neither, so a retry
imports the order exactly once. ``daily_report`` is enqueued with ``after=`` every import
of the batch: it runs once they are all done, totals the batch and returns the figures,
which pq stores as the job's result.
"""

from __future__ import annotations

from typing import Any

import pqcore as pq

app = pq.App()  # the queue in PQ_DB, like every pq command and service


class BadOrder(Exception):
    """An order no retry can fix."""


@app.task(queue="orders", max_attempts=5, no_retry_on=(BadOrder,), context=True)
def import_order(ctx: pq.TaskContext, batch: str, order_id: int, amount_cents: int) -> None:
    if amount_cents <= 0:
        raise BadOrder(f"order {order_id} has amount {amount_cents}")
    conn = app.connect()
    try:
        conn.execute(sql("INSERT INTO orders (batch, order_id, amount_cents) VALUES (?, ?, ?)"),
                     (batch, order_id, amount_cents))  # fmt: skip
        ctx.complete_in(conn)  # the order and the job's completion commit together
        conn.commit()
    finally:
        conn.close()


@app.task(queue="reports", context=True)
def daily_report(ctx: pq.TaskContext, batch: str) -> dict[str, Any]:
    ctx.progress(0.1, "reading orders")
    conn = app.connect()
    try:
        count, total = conn.execute(
            sql("SELECT count(*), coalesce(sum(amount_cents), 0) FROM orders WHERE batch = ?"),
            (batch,),
        ).fetchone()
    finally:
        conn.close()
    ctx.progress(1.0, "done")
    return {"batch": batch, "orders": int(count), "total_cents": int(total)}


def create_tables() -> None:
    conn = app.connect()
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS batches (name TEXT PRIMARY KEY, orders INTEGER NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS orders (batch TEXT NOT NULL, order_id INTEGER NOT NULL,"
            " amount_cents INTEGER NOT NULL, PRIMARY KEY (batch, order_id))"
        )
        conn.commit()
    finally:
        conn.close()


def sql(statement: str) -> str:
    """The example's SQL uses ?; psycopg (PostgreSQL) spells it %s."""
    return statement if app.queue.backend == "sqlite" else statement.replace("?", "%s")
