"""procrastinate through its public API (run in its own virtual environment): a task's
``defer_async`` / ``batch_defer_async``, ``run_worker_async`` at its defaults."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import procrastinate

URL = sys.argv[1]
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=URL))
HANDLER: list[Any] = []


@app.task(name="noop")
async def noop(p: str) -> None:
    HANDLER[0](p)


class Procrastinate:
    """One event loop and one open app per process, reused by every call."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.opened = False

    def _run(self, coro: Any) -> Any:
        async def go() -> Any:
            if not self.opened:
                await app.open_async()
                self.opened = True
            return await coro

        return self.loop.run_until_complete(go())

    def setup(self) -> None:
        self._run(app.schema_manager.apply_schema_async())

    def enqueue_one(self, payloads: list[str]) -> None:
        async def go() -> None:
            for p in payloads:
                await noop.defer_async(p=p)

        self._run(go())

    def enqueue_batch(self, payloads: list[str]) -> None:
        self._run(noop.batch_defer_async(*({"p": p} for p in payloads)))

    def consume(self, on_job: Any, stop: Any) -> None:
        HANDLER[:] = [on_job]

        async def go() -> None:
            worker = asyncio.create_task(app.run_worker_async(install_signal_handlers=False))
            while not stop.is_set() and not worker.done():
                await asyncio.sleep(0.01)
            worker.cancel()
            try:
                await worker
            except asyncio.CancelledError:
                pass

        self._run(go())

    def held(self) -> int:
        async def go() -> int:
            return len(list(await app.job_manager.list_jobs_async()))

        return int(self._run(go()))


if __name__ == "__main__":
    sys.exit(harness.main(Procrastinate, sys.argv[2:]))
