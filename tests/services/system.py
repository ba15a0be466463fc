"""Real service processes for the services and chaos tests: start, signal, audit.

Each test gets its own database (a ``tests.backends`` handle), jobs directory and
log directory; every process it starts is killed at teardown.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from pqcore import JobState, Queue
from services.common.jobfiles import COMPLETION_LINE
from tests.backends import BackendHandle
from tests.conftest import ROOT, pq_command


@dataclasses.dataclass
class Proc:
    role: str
    popen: subprocess.Popen[bytes]
    output: Path
    started: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout)

    def text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""


class System:
    """The processes of one test, sharing one queue, jobs directory and log directory."""

    def __init__(self, tmp_path: Path, backend: BackendHandle) -> None:
        self.root = tmp_path
        self.backend = backend
        self.jobs_dir = tmp_path / "jobs"
        self.log_dir = tmp_path / "logs"
        self.jobs_dir.mkdir(exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        self.procs: list[Proc] = []
        self.queue: Queue = backend.make()

    def env(self, **extra: str | float | int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PQ_")}
        env.update(
            PQ_DB=self.backend.url,
            PQ_JOBS_DIR=str(self.jobs_dir),
            PQ_LOG_DIR=str(self.log_dir),
            PQ_METRICS_PORT="0",
            PYTHONPATH=str(ROOT),  # test-only handler modules live in tests/
        )
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def start(self, role: str, *args: str | float, **env: str | float | int) -> Proc:
        n = sum(1 for p in self.procs if p.role == role)
        output = self.log_dir / f"{role}-{n}.out"
        with output.open("wb") as sink:
            popen = subprocess.Popen(
                [*pq_command(), role, *map(str, args)],
                cwd=self.root,
                env=self.env(**env),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        proc = Proc(role, popen, output, time.monotonic())
        self.procs.append(proc)
        return proc

    def run(
        self, role: str, *args: str | float, timeout: float = 60, **env: str | float | int
    ) -> Proc:
        proc = self.start(role, *args, **env)
        proc.wait(timeout)
        return proc

    def stop_all(self, sig: signal.Signals = signal.SIGKILL) -> None:
        for proc in self.procs:
            if proc.alive():
                proc.signal(signal.SIGCONT)
                proc.signal(sig)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.signal(signal.SIGKILL)
                proc.wait(10)

    def write_job_file(self, name: str, text: str = "created by test\n") -> Path:
        path = self.jobs_dir / name
        path.write_text(text)
        return path

    def count(self, status: JobState) -> int:
        return self.queue.stats().counts[status.value]

    def doctor(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*pq_command(), "--db", self.backend.url, "doctor"],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env(),
        )


def completion_lines(path: Path) -> list[int]:
    """Job ids of the completion lines in a job file, in order."""
    return [int(m.group(1)) for m in COMPLETION_LINE.finditer(path.read_text())]


@dataclasses.dataclass
class Audit:
    jobs: int
    redeliveries: int  # claims beyond the first, over all jobs
    duplicate_lines: int  # completion lines beyond one per job file
    duplicate_done: int  # done transitions beyond one per job
    problems: list[str]


def audit(system: System, *, expect_files: bool = True) -> Audit:
    """The promise, checked job by job: every job done exactly once, its file holding
    exactly one completion line (its own), and `pq doctor` clean."""
    queue = system.queue
    problems: list[str] = []
    jobs = list(_all_jobs(queue))
    redeliveries = duplicate_done = duplicate_lines = 0
    for job in jobs:
        if job.status is not JobState.DONE:
            problems.append(f"job {job.id} is {job.status.value}")
        history = queue.history(job.id)
        events = Counter(e.action for e in history)
        done_events = sum(1 for e in history if e.to_status is JobState.DONE)
        redeliveries += max(0, events["claim"] - 1)
        duplicate_done += max(0, done_events - 1)
        if done_events != 1:
            problems.append(f"job {job.id} has {done_events} transitions to done")
        if expect_files:
            lines = completion_lines(system.jobs_dir / job.data)
            duplicate_lines += max(0, len(lines) - 1)
            if lines != [job.id]:
                problems.append(f"job {job.id} file {job.data} holds completion lines {lines}")
    files = sorted(p.name for p in system.jobs_dir.glob("job-*.txt"))
    if expect_files and sorted(j.data for j in jobs) != files:
        problems.append(f"{len(files)} job files but {len(jobs)} jobs")
    doctor = system.doctor()
    if doctor.returncode != 0:
        problems.append(f"pq doctor: {doctor.stdout}{doctor.stderr}")
    return Audit(len(jobs), redeliveries, duplicate_lines, duplicate_done, problems[:20])


def _all_jobs(queue: Queue) -> Iterator:  # type: ignore[type-arg]
    before = None
    while True:
        page = queue.list_jobs(limit=1000, before_id=before)
        yield from page.jobs
        if page.next_cursor is None:
            return
        before = page.next_cursor


CONSUMER_ID = re.compile(r"^(?P<host>.+)-(?P<pid>\d+)-(?P<hex>[0-9a-f]{4})$")


def pid_of(consumer_id: str) -> int | None:
    match = CONSUMER_ID.match(consumer_id)
    return int(match.group("pid")) if match else None
