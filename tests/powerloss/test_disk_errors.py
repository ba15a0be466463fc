"""Disk errors injected under a real queue: EIO on write and on fsync, ENOSPC in the middle
of a transaction, a filesystem turned read-only. Through the public API: one clear
StorageError, never a success for a commit that may not be durable, a fresh connection
after an I/O error. Through the real services: logged, counted in
``pq_storage_errors_total``, retried; nothing acknowledged lost; ``pq doctor`` clean."""

from __future__ import annotations

import re
import signal
import sqlite3
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pqcore import (
    DatabaseReadOnly,
    DiskFull,
    DiskIOError,
    JobState,
    Queue,
    StorageError,
    open_queue,
)
from services.common.jobfiles import COMPLETION_LINE
from tests.powerloss.cutloop import ENQUEUED, PowerLossSystem, all_jobs
from tests.powerloss.faultfs import FaultFS
from tests.support import free_port, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def queue(faultfs: FaultFS) -> Iterator[Queue]:
    q = open_queue(str(faultfs.mountpoint / "queue.db"))
    q.enqueue("before the fault")
    yield q
    q.close()


def payloads(queue: Queue) -> list[str]:
    return sorted(j.data for j in all_jobs(queue).values())


def opens_of(fs: FaultFS, name: str) -> int:
    return int(fs.status()["opens"].get(name, 0))


def assert_clean_after_cut(fs: FaultFS, expected: list[str]) -> None:
    """What the queue reported committed is on the disk; nothing else is."""
    fs.cut()
    fs.remount()
    with open_queue(str(fs.mountpoint / "queue.db"), create=False) as q:
        assert payloads(q) == sorted(expected)
        assert q.doctor() == []


def test_a_failed_fsync_is_an_error_and_the_connection_is_replaced(
    faultfs: FaultFS, queue: Queue
) -> None:
    opened = opens_of(faultfs, "queue.db")
    faultfs.fault("eio_fsync", match="queue.db-wal", count=1)
    with pytest.raises(StorageError) as error:
        queue.enqueue("its fsync fails")
    assert type(error.value) is not StorageError  # a specific kind, not the catch-all
    message = str(error.value)
    assert "fsync" in message and "not committed" in message and "pq doctor" in message
    assert "queue.db" in message

    queue.enqueue("after the fault")  # the disk works again: a fresh connection is used
    assert opens_of(faultfs, "queue.db") > opened, "the connection was reused after EIO"
    assert payloads(queue) == ["after the fault", "before the fault"]
    assert queue.doctor() == []
    queue.close()
    assert_clean_after_cut(faultfs, ["after the fault", "before the fault"])


def test_a_failed_fsync_after_a_claim_loses_nothing_acknowledged(faultfs: FaultFS) -> None:
    """A failed fsync marks the pages it did not write clean (as Linux does): a claim
    committed without fsync lost its frames there, and every commit after it in the WAL
    went with it at the cut (the WAL's checksum chain ends at the hole), while the
    checkpoint had already copied them into the database. Claims now wait for the disk."""
    db = str(faultfs.mountpoint / "queue.db")
    with open_queue(db) as consumer, open_queue(db) as producer:
        producer.enqueue_many(["job 0", "job 1", "job 2"])
        [claimed] = consumer.claim("c1", limit=1)
        faultfs.fault("eio_fsync", match="queue.db-wal", count=1)
        with pytest.raises(StorageError):
            producer.enqueue("its fsync fails")
        producer.enqueue("acknowledged after the fault")
        checkpoint = sqlite3.connect(db)
        assert checkpoint.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[0] == 0
        checkpoint.close()
        faultfs.cut()
    faultfs.remount()
    with open_queue(db, create=False) as q:
        assert q.doctor() == []
        assert payloads(q) == ["acknowledged after the fault", "job 0", "job 1", "job 2"]
        assert q.get(claimed.id).status is JobState.PROCESSING  # the claim was durable too


def test_a_failed_write_mid_transaction_commits_nothing(faultfs: FaultFS, queue: Queue) -> None:
    faultfs.fault("eio_write", match="queue.db-wal", count=1)
    with pytest.raises(StorageError) as error:
        queue.enqueue_many([f"batch-{i}-" + "x" * 3000 for i in range(40)])
    assert type(error.value) is not StorageError
    assert "input/output error" in str(error.value) and "not committed" in str(error.value)
    assert payloads(queue) == ["before the fault"]
    queue.enqueue("after the fault")
    queue.close()
    assert_clean_after_cut(faultfs, ["after the fault", "before the fault"])


def test_disk_full_in_the_middle_of_a_transaction(faultfs: FaultFS, queue: Queue) -> None:
    batch = [f"big-{i}-" + "y" * 4000 for i in range(200)]  # ~800 KiB: the WAL must grow
    faultfs.fault("enospc")
    with pytest.raises(DiskFull, match="full") as error:
        queue.enqueue_many(batch)
    assert "nothing was lost" in str(error.value)
    assert faultfs.status()["faults"][0]["hits"] >= 1
    assert payloads(queue) == ["before the fault"]
    assert queue.stats().total == 1
    faultfs.heal()
    assert len(queue.enqueue_many(batch)) == 200  # space again: the same batch goes in
    assert queue.doctor() == []
    queue.close()
    assert_clean_after_cut(faultfs, ["before the fault", *batch])


def test_a_filesystem_turned_read_only(faultfs: FaultFS, queue: Queue) -> None:
    faultfs.fault("erofs")
    with pytest.raises(DatabaseReadOnly) as error:
        queue.enqueue("refused")
    assert "read-only" in str(error.value) and "nothing was changed" in str(error.value)
    assert queue.stats().total == 1  # reading still works
    faultfs.heal()
    queue.enqueue("after the fault")
    assert queue.doctor() == []
    queue.close()
    assert_clean_after_cut(faultfs, ["after the fault", "before the fault"])


def enqueue_until_a_checkpoint_fails(queue: Queue, seen: list[StorageError]) -> list[str]:
    """Commits, one job each, until the queue's own checkpoint has met the fault."""
    acknowledged = []
    for i in range(400):  # checkpoints run every 200 commits at most
        acknowledged.append(queue.enqueue(f"job {i}").data)
        if seen:
            return acknowledged
    raise AssertionError(f"no checkpoint failure reported in {len(acknowledged)} commits")


@pytest.mark.parametrize(
    ("fault", "kind", "words"),
    [("eio_write", DiskIOError, "input/output error"), ("enospc", DiskFull, "is full")],
)
def test_a_failed_checkpoint_is_reported_and_every_commit_stands(
    faultfs: FaultFS, queue: Queue, fault: str, kind: type[StorageError], words: str
) -> None:
    """Only a checkpoint writes the database file in WAL mode: its failure is no
    caller's exception (the commits before it stand), so the queue reports it."""
    seen: list[StorageError] = []
    queue.on_storage_error(seen.append)
    faultfs.fault(fault, match="queue.db")  # the WAL itself still takes commits
    acknowledged = enqueue_until_a_checkpoint_fails(queue, seen)
    assert type(seen[0]) is kind, seen
    message = str(seen[0])
    assert words in message and "queue.db" in message
    assert "checkpoint" in message and "Every commit stands" in message
    assert payloads(queue) == sorted(["before the fault", *acknowledged])

    faultfs.heal()
    healed = [queue.enqueue(f"healed {i}").data for i in range(210)]  # a checkpoint runs
    assert queue.doctor() == []
    queue.close()
    assert_clean_after_cut(faultfs, ["before the fault", *acknowledged, *healed])


def test_a_failed_checkpoint_without_a_listener_is_logged(
    faultfs: FaultFS, queue: Queue, caplog: pytest.LogCaptureFixture
) -> None:
    faultfs.fault("eio_write", match="queue.db")
    with caplog.at_level("WARNING", logger="pqcore.storage"):
        for i in range(400):
            queue.enqueue(f"job {i}")
            if caplog.records:
                break
    [record] = caplog.records
    assert record.levelname == "WARNING" and "checkpoint" in record.getMessage()
    faultfs.heal()


# ---------------------------------------------------------------- the real services


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r'^pq_storage_errors_total\{kind="(\w+)"\} (\S+)$', line)
        if match:
            values[match.group(1)] = float(match.group(2))
    return values


@pytest.mark.slow
@pytest.mark.parametrize("faults", ["database", "job_files"])
def test_services_log_count_and_outlive_disk_errors(
    tmp_path: Path, faultfs: FaultFS, faults: str
) -> None:
    system = PowerLossSystem(tmp_path, faultfs, "FULL")
    system.jobs_dir.mkdir()
    ports = {role: free_port() for role in ("producer", "consumer", "manager")}
    try:
        producer = system.start("producer", PQ_INTERVAL=0.05, PQ_METRICS_PORT=ports["producer"])
        consumer = system.start(
            "consumer", PQ_WORK_MIN=0, PQ_WORK_MAX=0.01, PQ_LEASE_SECONDS=3,
            PQ_METRICS_PORT=ports["consumer"],
        )  # fmt: skip
        manager = system.start("manager", PQ_RESCUE_INTERVAL=0.3, PQ_METRICS_PORT=ports["manager"])
        services = (producer, consumer, manager)

        def done() -> int:
            with system.open() as q:
                return q.stats().counts["done"]

        def progress(what: str) -> None:
            """Jobs get done again: every service came through the fault."""
            start = done()
            wait_for(lambda: done() >= start + 5, 60, f"jobs done again after {what}")
            assert all(p.alive() for p in services), [p.text()[-2000:] for p in services]

        def counted(kind: str) -> float:
            return sum(scrape(port).get(kind, 0) for port in ports.values())

        def spent() -> bool:
            return all(f["count"] == 0 for f in faultfs.status()["faults"])

        progress("start")
        if faults == "database":
            faultfs.fault("eio_fsync", match="queue.db-wal", count=4)
            wait_for(spent, 30, "the fsync faults")
            progress("EIO on fsync")
            faultfs.fault("eio_write", match="queue.db-wal", count=4)
            wait_for(spent, 30, "the write faults")
            progress("EIO on write")
            for fault, kind in (("enospc", "disk_full"), ("erofs", "read_only")):
                # Only the database's files: a full disk refuses the producer's new job
                # files first, and then only a write that grows the WAL or the database
                # would meet it; with the producer enqueueing, one soon does.
                faultfs.fault(fault, match="queue.db*")
                wait_for(lambda k=kind: counted(k) > 0, 60, f"a {kind} storage error counted")
                faultfs.heal()
                progress(fault)
            assert counted("io") > 0
            logs = producer.text() + consumer.text() + manager.text()
            assert "fsync failed" in logs and "read-only" in logs and "is full" in logs
        else:
            # A consumer's append whose fsync fails; the producer's temporary file writes.
            faultfs.fault("eio_fsync", match="job-*", count=3)
            faultfs.fault("eio_write", match=".tmp-job-*", count=2)
            wait_for(spent, 60, "the job-file faults")
            progress("job-file errors")
            assert scrape(ports["producer"]).get("job_file", 0) > 0
            assert scrape(ports["consumer"]).get("job_file", 0) > 0
            assert "job file error" in producer.text()
        faultfs.heal()

        # Drain: stop producing, let the consumer finish everything.
        producer.signal(signal.SIGTERM)
        producer.wait(30)
        with system.open() as q:
            wait_for(
                lambda: (
                    sum(
                        q.stats().counts[s.value]
                        for s in (JobState.PENDING, JobState.PROCESSING, JobState.FAILED)
                    )
                    == 0
                ),
                120,
                "the queue to drain",
            )
        system.stop_all(signal.SIGTERM)
    finally:
        system.kill_all()

    acknowledged = {int(m.group(1)): m.group(2) for m in ENQUEUED.finditer(producer.text())}
    assert acknowledged
    audit(system, acknowledged)
    # After a power cut too. Job files: the consumer re-syncs a completion line it finds
    # from a delivery whose fsync failed (the kernel shows a line it may never write).
    # Database: a failed fsync of the WAL loses nothing committed (before claims waited
    # for the disk, the database was then often malformed: RESULTS.md).
    faultfs.cut()
    faultfs.remount()
    audit(system, acknowledged)


def audit(system: PowerLossSystem, acknowledged: dict[int, str]) -> None:
    """Every acknowledged enqueue is there, every job done once with its one completion
    line, and pq doctor is clean."""
    with system.open() as q:
        jobs = all_jobs(q)
        assert q.doctor() == []
        for job_id, name in acknowledged.items():
            assert jobs[job_id].data == name
        problems = []
        for job in jobs.values():
            if job.status is not JobState.DONE:
                problems.append(f"job {job.id} is {job.status.value}")
            dones = sum(1 for e in q.history(job.id) if e.to_status is JobState.DONE)
            if dones != 1:
                problems.append(f"job {job.id} has {dones} transitions to done")
            lines = [
                int(m.group(1))
                for m in COMPLETION_LINE.finditer((system.jobs_dir / job.data).read_text())
            ]
            if lines != [job.id]:
                problems.append(f"job {job.id} file {job.data} holds completion lines {lines}")
        assert problems == []
    doctor = system.pq("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
