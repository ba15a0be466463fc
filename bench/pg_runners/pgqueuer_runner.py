"""pgqueuer through its public API (run in its own virtual environment): ``Queries``
to enqueue and install, ``QueueManager.run()`` at its defaults to consume."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import psycopg
from pgqueuer import PsycopgDriver, Queries, QueueManager

URL = sys.argv[1]
ENTRYPOINT = "noop"


class PgQueuer:
    """One event loop and one connection per process, reused by every call."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.driver: Any = None
        self.queries: Any = None

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _open(self) -> Any:
        if self.queries is None:
            conn = await psycopg.AsyncConnection.connect(URL, autocommit=True)
            self.driver = PsycopgDriver(conn)
            self.queries = Queries(self.driver)
        return self.queries

    def setup(self) -> None:
        async def go() -> None:
            await (await self._open()).install()

        self._run(go())

    def enqueue_one(self, payloads: list[str]) -> None:
        async def go() -> None:
            queries = await self._open()
            for p in payloads:
                await queries.enqueue(ENTRYPOINT, p.encode())

        self._run(go())

    def enqueue_batch(self, payloads: list[str]) -> None:
        async def go() -> None:
            n = len(payloads)
            await (await self._open()).enqueue(
                [ENTRYPOINT] * n, [p.encode() for p in payloads], [0] * n
            )

        self._run(go())

    def consume(self, on_job: Any, stop: Any) -> None:
        async def go() -> None:
            qm = QueueManager(await self._open())

            @qm.entrypoint(ENTRYPOINT)
            async def noop(job: Any) -> None:
                on_job(job.payload.decode())

            async def watch() -> None:
                while not stop.is_set():
                    await asyncio.sleep(0.01)
                qm.shutdown.set()

            watcher = asyncio.create_task(watch())
            await qm.run()
            await watcher

        self._run(go())

    def held(self) -> int:
        async def go() -> int:
            sizes = await (await self._open()).queue_size()
            return sum(s.count for s in sizes)

        return int(self._run(go()))


if __name__ == "__main__":
    sys.exit(harness.main(PgQueuer, sys.argv[2:]))
