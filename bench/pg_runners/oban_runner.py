"""Oban for Python through its public API (run in its own virtual environment, Python
3.12+): ``enqueue`` / ``enqueue_many`` of a ``@worker`` job, an ``Oban`` instance with
one queue at limit 10 (its README's example; Oban has no default queue) to consume."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from oban import Oban, worker
from oban.schema import install

URL = sys.argv[1]
LIMIT = 10
HANDLER: list[Any] = []


@worker(queue="default")
class Noop:
    async def process(self, job: Any) -> None:
        HANDLER[0](job.args["p"])


class ObanPy:
    """One event loop, one pool and one client instance per process, reused."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool: Any = None
        self.client: Any = None

    def _run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _pool(self) -> Any:
        if self.pool is None:
            self.pool = await Oban.create_pool(URL)
        return self.pool

    async def _client(self) -> Any:
        if self.client is None:
            self.client = Oban(pool=await self._pool())
            await self.client.start()
        return self.client

    def setup(self) -> None:
        async def go() -> None:
            await install(await self._pool())

        self._run(go())

    def enqueue_one(self, payloads: list[str]) -> None:
        async def go() -> None:
            oban = await self._client()
            for p in payloads:
                await oban.enqueue(Noop.new({"p": p}))

        self._run(go())

    def enqueue_batch(self, payloads: list[str]) -> None:
        async def go() -> None:
            await (await self._client()).enqueue_many([Noop.new({"p": p}) for p in payloads])

        self._run(go())

    def consume(self, on_job: Any, stop: Any) -> None:
        HANDLER[:] = [on_job]

        async def go() -> None:
            async with Oban(pool=await self._pool(), queues={"default": LIMIT}):
                while not stop.is_set():
                    await asyncio.sleep(0.01)

        self._run(go())

    def held(self) -> int:
        async def go() -> int:
            oban = await self._client()
            count, job_id = 0, 1
            # Oban's API reads one job at a time; ids are dense from 1 in a fresh database.
            while await oban.get_job(job_id) is not None:
                count += 1
                job_id += 1
            return count

        return int(self._run(go()))


if __name__ == "__main__":
    sys.exit(harness.main(ObanPy, sys.argv[2:]))
