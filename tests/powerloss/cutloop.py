"""The power-loss run: real services and the harness on a FaultFS disk, cut again and again.

Each epoch mounts the disk, starts a producer, two consumers and a manager (the real
services, ``python -m services.<role>``) and the harness roles (tests/powerloss/harness.py),
lets them work for a random moment and cuts the power: plain or torn, at a random time
or armed to land inside the k-th next fsync of the WAL (a writer mid-commit). Then every
process is SIGKILLed, the disk unmounted and mounted again, and the recovered queue is
checked against everything that was acknowledged before the cut. After the last cut the
services drain the queue and the whole run is audited job by job.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pqcore import Job, JobFilter, JobState, Queue, QueueSettings, open_queue
from services.common.jobfiles import COMPLETION_LINE
from tests.backends import BackendHandle
from tests.conftest import ROOT, pq_command
from tests.powerloss.faultfs import FaultFS
from tests.powerloss.harness import HARNESS_QUEUE, OPERATOR, read_records
from tests.services.system import Proc, System

ENQUEUED = re.compile(r"enqueued job=(\d+) file=(\S+)")
RECONCILED = re.compile(r"reconciled orphan job file (\S+) as job=(\d+)")
HARNESS_ROLES = ("enqueuer", "consumer", "observer", "operator")


@dataclasses.dataclass
class Figures:
    """What a run measured; ``lost_*`` count acknowledged operations missing after a cut."""

    synchronous: str
    cuts: int = 0
    torn_cuts: int = 0
    cuts_inside_wal_fsync: int = 0  # armed cuts that landed inside a commit's fsync
    cuts_with_unsynced_wal: int = 0  # cuts that dropped WAL blocks a writer had written
    enqueues_acked: int = 0
    completions_acked: int = 0
    operator_actions_acked: int = 0
    claims_acked: int = 0
    lost_enqueues: int = 0
    lost_completions: int = 0
    lost_operator_actions: int = 0
    cuts_that_lost_something: int = 0
    max_lost_in_one_cut: int = 0
    claims_undone: int = 0
    double_completions: int = 0  # jobs with more than one transition to done
    duplicate_completion_lines: int = 0  # job files with more than one completion line
    doctor_problems: int = 0
    # Job files that hold their completion line while the queue lost their job (enqueue and
    # completion both undone): the work was done once, its record is gone. NORMAL only.
    files_done_without_job: int = 0
    jobs: int = 0
    jobs_done_at_end: int = 0
    seconds: float = 0.0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def lost(self) -> int:
        return self.lost_enqueues + self.lost_completions + self.lost_operator_actions

    @property
    def acknowledged(self) -> int:
        return self.enqueues_acked + self.completions_acked + self.operator_actions_acked

    def summary(self) -> str:
        return (
            f"synchronous={self.synchronous}: {self.cuts} cuts ({self.torn_cuts} torn,"
            f" {self.cuts_inside_wal_fsync} inside a WAL fsync, {self.cuts_with_unsynced_wal}"
            f" dropping unsynced WAL data); acknowledged {self.acknowledged}"
            f" (enqueues {self.enqueues_acked}, completions {self.completions_acked},"
            f" operator actions {self.operator_actions_acked}) + claims {self.claims_acked};"
            f" lost {self.lost} (enqueues {self.lost_enqueues}, completions"
            f" {self.lost_completions}, operator {self.lost_operator_actions}) in"
            f" {self.cuts_that_lost_something} cuts, at most {self.max_lost_in_one_cut} in one;"
            f" claims undone {self.claims_undone}; double completions {self.double_completions};"
            f" duplicate completion lines {self.duplicate_completion_lines};"
            f" doctor problems {self.doctor_problems}; files done whose job was lost"
            f" {self.files_done_without_job}; jobs {self.jobs},"
            f" done at the end {self.jobs_done_at_end}; {self.seconds:.0f}s"
        )


class PowerLossSystem(System):
    """``System`` with the queue and job files on the FaultFS mount and everything that
    must survive a cut (logs, process output, harness records) on the real disk."""

    def __init__(self, work: Path, fs: FaultFS, synchronous: str) -> None:
        self.fs = fs
        self.db = str(fs.mountpoint / "queue.db")
        self.synchronous = synchronous
        self.root = work
        self.jobs_dir = fs.mountpoint / "jobs"
        self.log_dir = work / "logs"
        self.records = work / "records"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.records.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []
        self.backend = BackendHandle("sqlite", self.db, self.open)

    def open(self, **overrides: Any) -> Queue:
        settings = QueueSettings.from_env(
            {"PQ_SQLITE_SYNCHRONOUS": self.synchronous}, db=self.db, **overrides
        )
        return open_queue(self.db, settings=settings)

    def env(self, **extra: str | float | int) -> dict[str, str]:
        return super().env(
            PQ_SQLITE_SYNCHRONOUS=self.synchronous,
            PQ_BACKOFF_BASE_SECONDS=0.05,
            PQ_BACKOFF_CAP_SECONDS=0.5,
            PQ_MAX_ATTEMPTS=1000,
            **extra,
        )

    def start(self, role: str, *args: str | float, **env: str | float | int) -> Proc:
        """A real service as ``python -m services.<role>`` (the same code as ``pq <role>``,
        without the entry-point scan: a restart costs less CPU)."""
        return self._spawn(role, [sys.executable, "-m", f"services.{role}", *map(str, args)], env)

    def start_harness(self, role: str, seed: int, *args: str) -> Proc:
        record = self.records / f"{role}.jsonl"
        argv = [sys.executable, "-m", "tests.powerloss.harness", role, "--db", self.db]
        return self._spawn(
            f"harness-{role}", [*argv, "--record", str(record), "--seed", str(seed), *args], {}
        )

    def _spawn(self, role: str, argv: list[str], env: dict[str, Any]) -> Proc:
        n = sum(1 for p in self.procs if p.role == role)
        output = self.log_dir / f"{role}-{n}.out"
        with output.open("wb") as sink:
            popen = subprocess.Popen(
                argv,
                cwd=self.root,
                env=self.env(**env),
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: the operator's `pq` children die too
            )
        proc = Proc(role, popen, output, time.monotonic())
        self.procs.append(proc)
        return proc

    def run_harness_once(self) -> None:
        """The operator's start: resubmit the jobs it cancelled before a cut."""
        proc = self.start_harness("operator", 0, "--once")
        proc.wait(120)

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.alive():
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.stop_all(signal.SIGKILL)

    def pq(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*pq_command(), "--db", self.db, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env(),
            cwd=ROOT,
        )

    # ------------------------------------------------------------ what was acknowledged

    def acked_enqueues(self) -> dict[int, str]:
        """Job id -> payload for every enqueue that returned (producer and harness)."""
        acked: dict[int, str] = {}
        for out in sorted(self.log_dir.glob("producer-*.out")):
            text = out.read_text(errors="replace")
            for m in ENQUEUED.finditer(text):
                acked[int(m.group(1))] = m.group(2)
            for m in RECONCILED.finditer(text):
                acked[int(m.group(2))] = m.group(1)
        for record in read_records(self.records / "enqueuer.jsonl"):
            for job_id, data in zip(record["ids"], record["data"], strict=True):
                acked[job_id] = data
        return acked

    def acked_completions(self) -> dict[int, str]:
        """Job id -> payload for every completion that returned (harness consumer) or was
        read back as done (the observer, for the real consumers)."""
        done: dict[int, str] = {}
        for name in ("consumer.jsonl", "observer.jsonl"):
            for record in read_records(self.records / name):
                if record["op"] in ("complete", "done_seen"):
                    done[record["id"]] = record["data"]
        return done

    def acked_operator_actions(self) -> Counter[tuple[int, str]]:
        return Counter((r["id"], r["op"]) for r in read_records(self.records / "operator.jsonl"))


READY_WITHIN = 30.0  # seconds a harness process may take to open the queue


def ready(proc: Proc) -> bool:
    """The harness prints "<role> ready" once its queue is open (or it died trying)."""
    if not proc.alive():
        return True
    try:
        return " ready" in proc.output.read_text(errors="replace")
    except FileNotFoundError:
        return False


def sqlite_note() -> str:
    """The linked SQLite, and whether it has the WAL-reset bug: a race between connections
    that write and checkpoint at once, which can corrupt a b-tree on a healthy disk
    (https://sqlite.org/wal.html#walresetbug: 3.7.0 to 3.51.2; fixed in 3.51.3, 3.50.7
    and 3.44.6)."""
    version = sqlite3.sqlite_version_info
    fixed = (
        version >= (3, 51, 3)
        or (3, 50, 7) <= version < (3, 51)
        or ((3, 44, 6) <= version < (3, 45))
    )
    bug = (
        ""
        if fixed
        else (
            " (has the WAL-reset bug, https://sqlite.org/wal.html#walresetbug; pq's own FULL"
            " checkpoints keep PASSIVE ones from racing a reset)"
        )
    )
    return f"SQLite {sqlite3.sqlite_version}{bug}"


def all_jobs(queue: Queue, flt: JobFilter | None = None) -> dict[int, Job]:
    jobs: dict[int, Job] = {}
    after = None
    while True:
        page = queue.list_jobs(flt, limit=1000, oldest_first=True, after_id=after)
        jobs.update((j.id, j) for j in page.jobs)
        if page.next_cursor is None:
            return jobs
        after = page.next_cursor


class CutLoop:
    def __init__(self, work: Path, fs: FaultFS, *, synchronous: str, cuts: int, seed: int) -> None:
        self.fs = fs
        self.rng = random.Random(seed)
        self.seed = seed
        self.cuts = cuts
        self.system = PowerLossSystem(work, fs, synchronous)
        self.figures = Figures(synchronous)
        self.strict = synchronous.upper() in ("FULL", "EXTRA")
        self.lost: set[tuple[str, Any]] = set()
        self.claims_checked = 0
        self.timings: Counter[str] = Counter()

    # ------------------------------------------------------------ the run

    def run(self) -> Figures:
        started = time.monotonic()
        self.system.jobs_dir.mkdir(exist_ok=True)
        with self.system.open():
            pass  # schema in place; a clean unmount below makes it durable
        self.fs.remount()
        try:
            for epoch in range(self.cuts):
                self.epoch(epoch)
            self.drain()
        finally:
            self.system.kill_all()
        self.figures.seconds = time.monotonic() - started
        return self.figures

    def start_everything(self, epoch: int) -> None:
        s = self.system
        s.start("producer", PQ_INTERVAL=0.1)
        for _ in range(2):
            s.start("consumer", PQ_WORK_MIN=0, PQ_WORK_MAX=0.02, PQ_LEASE_SECONDS=2,
                    PQ_QUEUES="default")  # fmt: skip
        s.start("manager", PQ_RESCUE_INTERVAL=0.3, PQ_CHECK_INTERVAL=1, PQ_LEADER_TTL=2,
                PQ_CONSUMER_TIMEOUT=5)  # fmt: skip
        harness = [s.start_harness(role, self.seed * 1000 + epoch * 10 + i)
                   for i, role in enumerate(HARNESS_ROLES)]  # fmt: skip
        # The cut's moment counts from when every recorder is ready, not from its start:
        # on a loaded machine starting Python took the whole window, and a whole run once
        # went by without a single operator action to check.
        deadline = time.monotonic() + READY_WITHIN
        while not all(ready(p) for p in harness) and time.monotonic() < deadline:
            time.sleep(0.05)

    def epoch(self, epoch: int) -> None:
        torn = epoch % 4 >= 2
        armed = epoch % 2 == 1
        t0 = time.monotonic()
        self.start_everything(epoch)
        report: dict[str, Any] | None = None
        if armed:
            time.sleep(self.rng.uniform(0.8, 1.5))
            self.live_check(epoch)
            self.fs.arm_cut("*-wal", after=self.rng.randint(1, 40), torn=torn)
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                status = self.fs.status()
                if status["dead"]:
                    report = status["last_cut"]
                    break
                time.sleep(0.02)
        else:
            time.sleep(self.rng.uniform(0.7, 2.5))
            self.live_check(epoch)
        if report is None:  # timed, or the armed fsync did not come in time
            report = self.fs.cut(torn=torn)
        t1 = time.monotonic()
        self.system.kill_all()
        self.fs.remount()
        t2 = time.monotonic()
        f = self.figures
        f.cuts += 1
        f.torn_cuts += bool(report["torn"])
        f.cuts_inside_wal_fsync += bool(report.get("during_fsync_of"))
        f.cuts_with_unsynced_wal += report["wal_dirty_blocks"] > 0
        self.check(f"cut {epoch + 1}", report)
        t3 = time.monotonic()
        self.timings.update(running=t1 - t0, remount=t2 - t1, check=t3 - t2)

    def live_check(self, epoch: int) -> None:
        """PQ_POWERLOSS_LIVE_CHECK=1 (diagnostics): quick_check the live database just
        before the cut, so that a corruption found after it can be told apart from one
        the live system already had."""
        if os.environ.get("PQ_POWERLOSS_LIVE_CHECK") != "1":
            return
        try:
            conn = sqlite3.connect(self.system.db, timeout=10)
            try:
                found = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
            finally:
                conn.close()
        except sqlite3.Error as error:
            found = [f"{type(error).__name__}: {error}"]
        if found != ["ok"]:
            self.problem(f"before cut {epoch + 1}, live: {found[:3]}")

    def drain(self) -> None:
        """No more cuts: the consumers and the manager finish every job."""
        s = self.system
        s.run_harness_once()
        s.start("producer", PQ_COUNT=0)  # reconcile: a file written before a cut gets its job
        for _ in range(2):
            s.start("consumer", PQ_WORK_MIN=0, PQ_WORK_MAX=0.02, PQ_LEASE_SECONDS=2,
                    PQ_QUEUES="default")  # fmt: skip
        s.start("manager", PQ_RESCUE_INTERVAL=0.3, PQ_CHECK_INTERVAL=1, PQ_LEADER_TTL=2,
                PQ_CONSUMER_TIMEOUT=5)  # fmt: skip
        s.start_harness("consumer", self.seed * 1000 + 999)
        active = (JobState.PENDING, JobState.PROCESSING, JobState.FAILED)
        deadline = time.monotonic() + 300
        with s.open() as queue:
            while True:
                counts = queue.stats().counts
                left = sum(counts[state.value] for state in active)
                stuck = counts[JobState.PERMANENTLY_FAILED.value] + counts["cancelled"]
                producer_done = all(not p.alive() for p in s.procs if p.role == "producer")
                if left == 0 and producer_done:
                    break
                if stuck or time.monotonic() > deadline:
                    self.figures.problems.append(f"drain stopped with counts {counts}")
                    break
                time.sleep(0.2)
        s.stop_all(signal.SIGTERM)
        self.final_audit()

    # ------------------------------------------------------------ checks

    def problem(self, text: str) -> None:
        if len(self.figures.problems) < 50:
            self.figures.problems.append(text)

    def check(self, when: str, report: dict[str, Any]) -> None:
        """Everything acknowledged before the cut is still there; the queue is sound."""
        f, s = self.figures, self.system
        enqueued = s.acked_enqueues()
        completed = s.acked_completions()
        operator = s.acked_operator_actions()
        claims = read_records(s.records / "consumer.jsonl")
        with s.open() as queue:
            jobs = all_jobs(queue)
            newly_lost: list[str] = []

            def lose(kind: str, key: Any, text: str) -> None:
                if (kind, key) not in self.lost:
                    self.lost.add((kind, key))
                    newly_lost.append(text)

            for job_id, data in enqueued.items():
                job = jobs.get(job_id)
                if job is None or job.data != data:
                    lose("enqueue", job_id, f"enqueue of job {job_id} ({data})")
            for job_id, data in completed.items():
                job = jobs.get(job_id)
                if job is None or job.data != data or job.status is not JobState.DONE:
                    state = "gone" if job is None else job.status.value
                    lose("complete", job_id, f"completion of job {job_id} ({data}): {state}")
            histories: dict[int, list[Any]] = {}

            def history(job_id: int) -> list[Any]:
                if job_id not in histories:
                    histories[job_id] = queue.history(job_id) if job_id in jobs else []
                return histories[job_id]

            for (job_id, action), n in operator.items():
                actor_events = [e for e in history(job_id) if e.actor == OPERATOR]
                if sum(1 for e in actor_events if e.action == action) < n:
                    lose("operator", (job_id, action), f"operator {action} of job {job_id}")
            for record in claims[self.claims_checked :]:
                if record["op"] != "claim":
                    continue
                f.claims_acked += 1
                events = history(record["id"])
                if not any(
                    e.action == "claim"
                    and e.attempt == record["attempt"]
                    and e.actor == record["actor"]
                    for e in events
                ):
                    f.claims_undone += 1
            self.claims_checked = len(claims)
            for job_id in {r["id"] for r in claims if r["op"] == "complete"} & set(jobs):
                dones = sum(1 for e in history(job_id) if e.to_status is JobState.DONE)
                if dones > 1:
                    self.problem(f"{when}: job {job_id} done {dones} times")
            problems = queue.doctor()
        f.enqueues_acked = len(enqueued)
        f.completions_acked = len(completed)
        f.operator_actions_acked = sum(operator.values())
        f.lost_enqueues = sum(1 for kind, _ in self.lost if kind == "enqueue")
        f.lost_completions = sum(1 for kind, _ in self.lost if kind == "complete")
        f.lost_operator_actions = sum(1 for kind, _ in self.lost if kind == "operator")
        if newly_lost:
            f.cuts_that_lost_something += 1
            f.max_lost_in_one_cut = max(f.max_lost_in_one_cut, len(newly_lost))
            if self.strict:
                self.problem(f"{when} ({report}) lost: {newly_lost[:5]}")
        if problems:
            f.doctor_problems += len(problems)
            self.problem(f"{when}: doctor: {problems}; {sqlite_note()}")

    def final_audit(self) -> None:
        f, s = self.figures, self.system
        self.check("after the drain", {})
        doctor = s.pq("doctor")
        if doctor.returncode != 0:
            self.problem(f"pq doctor after the run: {doctor.stdout}{doctor.stderr}")
        with s.open() as queue:
            jobs = all_jobs(queue)
            f.jobs = len(jobs)
            for job in jobs.values():
                if job.status is JobState.DONE:
                    f.jobs_done_at_end += 1
                else:
                    self.problem(f"job {job.id} ({job.queue}) ended {job.status.value}")
                dones = sum(1 for e in queue.history(job.id) if e.to_status is JobState.DONE)
                if dones > 1:
                    f.double_completions += 1
                if dones != 1:
                    self.problem(f"job {job.id} has {dones} transitions to done")
        by_file = {j.data: j for j in jobs.values() if j.queue != HARNESS_QUEUE}
        files = sorted(s.jobs_dir.glob("job-*.txt"))
        for path in files:
            lines = [int(m.group(1)) for m in COMPLETION_LINE.finditer(path.read_text())]
            if len(lines) > 1:
                f.duplicate_completion_lines += 1
            job = by_file.get(path.name)
            if job is None and len(lines) == 1 and not self.strict:
                f.files_done_without_job += 1
            elif job is None:
                self.problem(f"job file {path.name} has no job (completion lines {lines})")
            elif lines != [job.id]:
                self.problem(f"job file {path.name} of job {job.id} holds lines {lines}")
        missing = set(by_file) - {p.name for p in files}
        if missing:
            self.problem(f"{len(missing)} jobs without their file, e.g. {sorted(missing)[:3]}")


def write_figures(figures: Figures, where: Path) -> None:
    where.parent.mkdir(parents=True, exist_ok=True)
    data = dataclasses.asdict(figures)
    data.update(lost=figures.lost, acknowledged=figures.acknowledged)
    where.write_text(json.dumps(data, indent=2) + "\n")
