"""Enqueue a batch of order imports and the report that waits for them, then wait for it.

    PQ_DB=var/orders.db python -m examples.orders.main --orders 20 --batch monday

The batch row, every import job and the report job are written in one transaction of
the application's own: all of them exist, or (if anything fails) none does.
"""

from __future__ import annotations

import argparse
import json
import random

from examples.orders.tasks import app, create_tables, daily_report, import_order, sql


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=20)
    parser.add_argument("--batch", default="batch-1")
    parser.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the report")
    args = parser.parse_args()
    create_tables()
    conn = app.connect()
    try:
        conn.execute(sql("INSERT INTO batches (name, orders) VALUES (?, ?)"),
                     (args.batch, args.orders))  # fmt: skip
        imports = [
            import_order.enqueue(args.batch, n, random.randint(100, 10_000), connection=conn)
            for n in range(1, args.orders + 1)
        ]
        report = daily_report.enqueue(args.batch, after=imports, connection=conn)
        conn.commit()  # now the jobs exist, and consumers take them
    finally:
        conn.close()
    app.queue.wake()  # SQLite: tell idle consumers now (PostgreSQL's NOTIFY came with the commit)
    print(f"enqueued {len(imports)} imports and report job {report.id}", flush=True)
    print(json.dumps(report.wait(timeout=args.wait), sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
