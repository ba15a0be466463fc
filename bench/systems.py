"""The queues under test, each behind the same small adapter so every workload treats
them alike: ``put``/``put_many`` to produce, ``take``/``ack`` to consume.

Every adapter opens its own connections inside the process that uses it, forces the
requested ``synchronous`` level on each of them (peers set their own pragmas) and reads
it back, so the table prints what the connections really ran with.

The raw SQLite floor is the only place in ``bench/`` that writes SQL: it *is* the
measure of what SQLite itself costs, the physical limit every ratio is read against.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pqcore import open_queue

SYNC_NAMES = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def _force_sync(conn: sqlite3.Connection, synchronous: str) -> str:
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    value = conn.execute("PRAGMA synchronous").fetchone()[0]
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    return f"{SYNC_NAMES[int(value)]}/{str(mode).upper()}"


def _agree(readings: list[str]) -> str:
    distinct = sorted(set(readings))
    return distinct[0] if len(distinct) == 1 else "MIXED:" + ",".join(distinct)


class Adapter:
    """One system, opened in one process. ``take`` returns (key, payload) or None."""

    name = "?"
    has_batch_enqueue = False
    has_ack = True

    def __init__(self, directory: Path, synchronous: str) -> None:
        self.directory = directory
        self.synchronous = synchronous

    def readback(self) -> str:
        raise NotImplementedError

    def put(self, payload: str) -> None:
        raise NotImplementedError

    def put_many(self, payloads: list[str]) -> None:
        raise NotImplementedError

    def take(self, wait: float = 0.0) -> tuple[Any, str] | None:
        raise NotImplementedError

    def ack(self, key: Any) -> None:
        pass

    def count(self) -> int:
        """Jobs the system holds (every state): losses and duplicates of an enqueue run."""
        raise NotImplementedError

    def flush(self) -> None:
        """Make every acknowledgement so far durable (for systems that defer them)."""

    def close(self) -> None:
        pass


# ------------------------------------------------------------------------ pq


class PQCore(Adapter):
    """pqcore through its public API: ``enqueue``/``enqueue_many`` and the ``Worker``
    helper (batched claims, completions settled together with the next claim)."""

    name = "pq"
    has_batch_enqueue = True

    wakeup = "doorbell"

    def __init__(self, directory: Path, synchronous: str, *, batch: int | None = None) -> None:
        super().__init__(directory, synchronous)
        from pqcore import QueueSettings

        path = str(directory / "pq.db")
        settings = QueueSettings(
            db=path, sqlite_synchronous=synchronous, lease_seconds=60, sqlite_wakeup=self.wakeup
        )
        self.queue = open_queue(path, settings=settings)
        self.consumer_id = f"bench-{uuid.uuid4().hex[:8]}"
        self.batch = batch
        self._worker: Any = None

    def readback(self) -> str:
        conn = self.queue.driver.connection()
        value = conn.execute("PRAGMA synchronous").fetchone()[0]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        return f"{SYNC_NAMES[int(value)]}/{str(mode).upper()}"

    def put(self, payload: str) -> None:
        self.queue.enqueue(payload)

    def count(self) -> int:
        return int(self.queue.stats().total)

    def put_many(self, payloads: list[str]) -> None:
        for start in range(0, len(payloads), 10_000):
            self.queue.enqueue_many(payloads[start : start + 10_000])

    def worker(self) -> Any:
        if self._worker is None:
            from pqcore.worker import Worker

            # At its defaults (batch and prefetch window), as the consumer service runs it.
            extra = {} if self.batch is None else {"batch": self.batch}
            self._worker = Worker(self.queue, self.consumer_id, **extra)
        return self._worker

    def take(self, wait: float = 0.0) -> tuple[Any, str] | None:
        job = self.worker().next(timeout=wait)
        return None if job is None else (job, job.data)

    def ack(self, key: Any) -> None:
        self.worker().done(key)

    def flush(self) -> None:
        if self._worker is not None:
            self._worker.flush()

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
        self.queue.close()


class PQCorePerCall(PQCore):
    """pq without the ``Worker``: ``claim(limit=1)`` then ``complete``, one call each, as a
    user calling the API directly gets it (two transactions a job)."""

    name = "pq-call"

    def take(self, wait: float = 0.0) -> tuple[Any, str] | None:
        deadline = time.monotonic() + wait
        while True:
            claimed = self.queue.claim(self.consumer_id, limit=1)
            if claimed:
                return claimed[0], claimed[0].data
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.queue.wait_for_jobs(remaining):
                return None

    def ack(self, key: Any) -> None:
        self.queue.complete(key.id, key.lease_token or "")

    def flush(self) -> None:
        pass


class PQCorePolling(PQCore):
    """pq with the doorbell off: idle consumers re-check every 50 ms (the fallback)."""

    name = "pq-poll"
    wakeup = "poll"


# ------------------------------------------------------------------------ huey


class Huey(Adapter):
    """Huey's ``SqliteStorage`` used directly. A dequeue deletes the row: there is no
    acknowledgement, so a crash between dequeue and the end of the work loses the job."""

    name = "huey"
    has_ack = False

    def __init__(self, directory: Path, synchronous: str) -> None:
        super().__init__(directory, synchronous)
        from huey.storage import SqliteStorage

        self.storage = SqliteStorage(name="bench", filename=str(directory / "huey.db"))
        self._sync = _force_sync(self.storage.conn, synchronous)

    def readback(self) -> str:
        return _force_sync(self.storage.conn, self.synchronous)

    def put(self, payload: str) -> None:
        self.storage.enqueue(payload.encode())

    def count(self) -> int:
        return int(self.storage.queue_size())

    def take(self, wait: float = 0.0) -> tuple[Any, str] | None:
        deadline = time.monotonic() + wait
        while True:
            data = self.storage.dequeue()
            if data is not None:
                return None, bytes(data).decode()
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.001)

    def close(self) -> None:
        self.storage.close()


# ------------------------------------------------------------------------ persist-queue


class PersistQueue(Adapter):
    """persist-queue ``SQLiteAckQueue``: put / get / ack."""

    name = "persist-queue"

    def __init__(self, directory: Path, synchronous: str) -> None:
        super().__init__(directory, synchronous)
        import persistqueue

        self._empty = persistqueue.Empty
        # auto_resume=True (its default) would hand other processes' unacked items out
        # again whenever a process opens the queue; off, to give it its best chance.
        self.q = persistqueue.SQLiteAckQueue(
            str(directory / "persist-queue"), auto_commit=True, auto_resume=False
        )
        self._connections = {id(c): c for c in (self.q._getter, self.q._putter)}
        for conn in self._connections.values():
            _force_sync(conn, synchronous)

    def readback(self) -> str:
        return _agree([_force_sync(c, self.synchronous) for c in self._connections.values()])

    def put(self, payload: str) -> None:
        self.q.put(payload)

    def count(self) -> int:
        return int(self.q.qsize())

    def take(self, wait: float = 0.0) -> tuple[Any, str] | None:
        deadline = time.monotonic() + wait
        while True:
            try:
                item = self.q.get(block=False, raw=True)
                return item["pqid"], item["data"]
            except self._empty:
                if time.monotonic() >= deadline:
                    return None
                time.sleep(0.001)

    def ack(self, key: Any) -> None:
        self.q.ack(id=key)

    def close(self) -> None:
        self.q.close()


# ------------------------------------------------------------------------ litequeue


class LiteQueue(Adapter):
    """litequeue: put / pop / done."""

    name = "litequeue"

    def __init__(self, directory: Path, synchronous: str) -> None:
        super().__init__(directory, synchronous)
        from litequeue import LiteQueue as Impl

        self.q = Impl(str(directory / "litequeue.db"))
        _force_sync(self.q.conn, synchronous)

    def readback(self) -> str:
        return _force_sync(self.q.conn, self.synchronous)

    def put(self, payload: str) -> None:
        self.q.put(payload)

    def count(self) -> int:
        return int(self.q.qsize())

    def take(self, wait: float = 0.0) -> tuple[Any, str] | None:
        deadline = time.monotonic() + wait
        while True:
            message = self.q.pop()
            if message is not None:
                return message.message_id, message.data
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.001)

    def ack(self, key: Any) -> None:
        self.q.done(key)

    def close(self) -> None:
        self.q.close()


# ------------------------------------------------------------------------ raw floor


class RawFloor(Adapter):
    """The cheapest correct queue SQLite allows: claim with one ``UPDATE ... RETURNING``
    in ``BEGIN IMMEDIATE``, acknowledge with one guarded ``UPDATE``. Two commits a job."""

    name = "raw-floor"
    has_batch_enqueue = True

    def __init__(self, directory: Path, synchronous: str) -> None:
        super().__init__(directory, synchronous)
        self.conn = sqlite3.connect(str(directory / "raw.db"), isolation_level=None, timeout=30)
        self.conn.execute("PRAGMA busy_timeout = 30000")
        self.conn.execute("PRAGMA journal_mode = WAL")
        _force_sync(self.conn, synchronous)
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS q (id INTEGER PRIMARY KEY, data TEXT NOT NULL,"
            " status INTEGER NOT NULL DEFAULT 0, token TEXT)"
        )
        self.conn.execute("CREATE INDEX IF NOT EXISTS q_ready ON q (id) WHERE status = 0")
        self.conn.execute("COMMIT")

    def readback(self) -> str:
        return _force_sync(self.conn, self.synchronous)

    def put(self, payload: str) -> None:
        self.conn.execute("INSERT INTO q (data) VALUES (?)", (payload,))

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM q").fetchone()[0])

    def put_many(self, payloads: list[str]) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany("INSERT INTO q (data) VALUES (?)", [(p,) for p in payloads])
        self.conn.execute("COMMIT")

    def take(self, wait: float = 0.0) -> tuple[Any, str] | None:
        deadline = time.monotonic() + wait
        while True:
            token = uuid.uuid4().hex
            self.conn.execute("BEGIN IMMEDIATE")
            row = self.conn.execute(
                "UPDATE q SET status = 1, token = ? WHERE id ="
                " (SELECT id FROM q WHERE status = 0 ORDER BY id LIMIT 1) RETURNING id, data",
                (token,),
            ).fetchone()
            self.conn.execute("COMMIT")
            if row is not None:
                return (row[0], token), row[1]
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.001)

    def ack(self, key: Any) -> None:
        job_id, token = key
        changed = self.conn.execute(
            "UPDATE q SET status = 2 WHERE id = ? AND status = 1 AND token = ?", (job_id, token)
        ).rowcount
        if changed != 1:
            raise RuntimeError(f"raw floor lost the lease of {job_id}")

    def close(self) -> None:
        self.conn.close()


class OneCommit(Adapter):
    """The raw cost of one tiny commit: an INSERT of a few bytes in its own transaction."""

    name = "one-commit"
    has_batch_enqueue = False

    def __init__(self, directory: Path, synchronous: str) -> None:
        super().__init__(directory, synchronous)
        self.conn = sqlite3.connect(str(directory / "commit.db"), isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        _force_sync(self.conn, synchronous)
        self.conn.execute("CREATE TABLE IF NOT EXISTS t (data TEXT NOT NULL)")

    def readback(self) -> str:
        return _force_sync(self.conn, self.synchronous)

    def put(self, payload: str) -> None:
        self.conn.execute("INSERT INTO t (data) VALUES (?)", (payload,))

    def count(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM t").fetchone()[0])

    def close(self) -> None:
        self.conn.close()


SYSTEMS: dict[str, Callable[[Path, str], Adapter]] = {
    "pq": PQCore,
    "pq-call": PQCorePerCall,
    "pq-poll": PQCorePolling,
    "huey": Huey,
    "persist-queue": PersistQueue,
    "litequeue": LiteQueue,
    "raw-floor": RawFloor,
    "one-commit": OneCommit,
}
QUEUES = ["pq", "huey", "persist-queue", "litequeue", "raw-floor"]
