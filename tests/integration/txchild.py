"""Children for the transactional-completion kill test (test_transactions.py).

A "zygote" process imports pqcore (and psycopg) once, then forks one child per line it
reads: ``run <kill_at>`` (or ``enqueue <kill_at>``: enqueue in a transaction of its own).
Each ``run`` child opens the queue, claims one job, runs the ``transfer``
task through pqcore's task runner (the consumer's), reports what the runner says, and
exits. The task writes to the application's own tables and completes its job in the
same transaction (``ctx.complete_in``); at every step it prints ``at <pid> <step>``, and
at the step named ``kill_at`` it stops there and waits to be killed (``stop:<step>``: it
SIGSTOPs itself there, to be continued later as a zombie). The zygote has no thread and
no connection when it forks, so every child starts clean, in milliseconds.

    python -m tests.integration.txchild URL
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import pqcore as pq
from pqcore import running

STEPS = ("claimed", "started", "wrote-1", "wrote-2", "completed-in", "committed", "returned")
app = pq.App()
KILL_AT = ""


def marker(step: str) -> None:
    print(f"at {os.getpid()} {step}", flush=True)
    if step == KILL_AT:
        while True:  # killed here
            time.sleep(3600)
    if f"stop:{step}" == KILL_AT:
        os.kill(os.getpid(), signal.SIGSTOP)  # a zombie from here on, once continued


@app.task(name="tx.transfer", queue="tx", context=True)
def transfer(ctx: pq.TaskContext, amount: int) -> None:
    marker("started")
    conn = app.connect()
    mark = "?" if ctx.queue.backend == "sqlite" else "%s"
    try:
        conn.execute(f"INSERT INTO ledger (job_id, amount) VALUES ({mark}, {mark})",
                     (ctx.job_id, amount))  # fmt: skip
        marker("wrote-1")
        conn.execute(f"UPDATE totals SET n = n + {mark} WHERE id = 1", (amount,))
        marker("wrote-2")
        ctx.complete_in(conn, result={"moved": amount})
        marker("completed-in")
        conn.commit()
        marker("committed")
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.close()


def child(url: str) -> None:
    queue = pq.open_queue(url)
    app.use(queue)
    claimed = queue.claim(f"tx-{os.getpid()}", queues=["tx"], lease_seconds=0.001)
    if not claimed:
        print(f"idle {os.getpid()}", flush=True)
        return
    job = claimed[0]
    marker("claimed")
    outcome = running.run(queue, job)
    marker("returned")
    try:
        if outcome.kind is running.RunKind.DONE:
            queue.complete(job.id, job.lease_token or "", result=outcome.value)
        elif outcome.kind is running.RunKind.FAILED:
            queue.fail(job.id, job.lease_token or "", outcome.error or "", retryable=True)
    except pq.LeaseLost:
        pass
    print(f"end {os.getpid()} {job.id} {outcome.kind.value} {outcome.error or ''}"[:300],
          flush=True)  # fmt: skip


def enqueue_child(url: str) -> None:
    """Enqueue a task in a transaction of the child's own, with a write of its own."""
    queue = pq.open_queue(url)
    app.use(queue)
    conn = app.connect()
    mark = "?" if queue.backend == "sqlite" else "%s"
    conn.execute(f"INSERT INTO ledger (job_id, amount) VALUES ({mark}, {mark})", (0, 1))
    handle = transfer.enqueue(1, connection=conn)
    print(f"enqueued {os.getpid()} {handle.id}", flush=True)
    marker("enqueued")
    conn.commit()
    marker("committed")
    conn.close()
    print(f"end {os.getpid()} {handle.id} enqueued", flush=True)


def zygote(url: str) -> None:
    global KILL_AT
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, kill_at = line.strip().partition(" ")
        if command not in ("run", "enqueue"):
            continue
        pid = os.fork()
        if pid == 0:
            KILL_AT = kill_at
            sys.stdin.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            code = 0
            try:
                (child if command == "run" else enqueue_child)(url)
            except BaseException as error:
                print(f"crash {os.getpid()} {type(error).__name__}: {error}"[:300], flush=True)
                code = 1
            os._exit(code)
        print(f"child {pid}", flush=True)


def create_tables(conn: Any, backend: str) -> None:
    """The application's own tables, in the queue's database (the test calls this)."""
    conn.execute("CREATE TABLE ledger (job_id INTEGER NOT NULL, amount INTEGER NOT NULL)")
    conn.execute("CREATE TABLE totals (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    conn.execute("INSERT INTO totals VALUES (1, 0)")
    conn.commit()


if __name__ == "__main__":
    zygote(sys.argv[1])
