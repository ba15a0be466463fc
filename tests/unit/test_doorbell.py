"""The SQLite doorbell: a commit that makes jobs claimable wakes waiting consumers in
other threads and processes; dead waiters' sockets are cleaned up; polling remains.

``Doorbell.wait`` returns True only when a ring arrived (its timeout returns False),
so these tests fail if no ring is delivered, without measuring time."""

from __future__ import annotations

import multiprocessing
import os
import socket
import threading
from pathlib import Path

import pqcore
from pqcore import Queue, QueueSettings
from pqcore.doorbell import Doorbell
from tests.backends import FakeClock


def open_queue(path: Path, **settings: object) -> Queue:
    return pqcore.open_queue(str(path), settings=QueueSettings(db=str(path), **settings))  # type: ignore[arg-type]


def _wait_in_child(db: str, listening: object, out: object) -> None:
    bell = Doorbell(db)
    bell.listen()
    listening.set()  # type: ignore[attr-defined]
    out.put(bell.wait(60))  # type: ignore[attr-defined]
    bell.close()


def test_an_enqueue_wakes_a_waiter_in_another_process(tmp_path: Path) -> None:
    queue = open_queue(tmp_path / "q.db")
    ctx = multiprocessing.get_context("fork")
    listening, out = ctx.Event(), ctx.Queue()
    child = ctx.Process(target=_wait_in_child, args=(queue.driver.path, listening, out))
    child.start()
    try:
        assert listening.wait(30)
        queue.enqueue("wake up")
        assert out.get(timeout=30) is True
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
        queue.close()


def _listen_then_wait(bell: Doorbell, listening: threading.Event, woke: list[bool]) -> None:
    bell.listen()
    listening.set()
    woke.append(bell.wait(60))


def ring_received_after(queue_path: Path, action: object) -> bool:
    """Run ``action`` while another thread waits on the doorbell; True if it rang."""
    bell = Doorbell(str(queue_path))
    listening, woke = threading.Event(), []
    waiter = threading.Thread(target=_listen_then_wait, args=(bell, listening, woke))
    waiter.start()
    assert listening.wait(30)
    action()  # type: ignore[operator]
    waiter.join(65)
    bell.close()
    return woke == [True]


def test_release_and_rescue_ring_because_they_make_jobs_claimable(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "q.db"
    queue = pqcore.open_queue(str(path), settings=QueueSettings(db=str(path)), clock=clock)
    queue.enqueue_many(["a", "b"])
    first, _ = queue.claim("c1", limit=2, lease_seconds=5)
    assert ring_received_after(path, lambda: queue.release(first.id, first.lease_token or ""))
    clock.advance(10)
    assert ring_received_after(path, queue.rescue_expired)
    assert queue.stats().counts["pending"] == 2
    queue.close()


def test_wait_for_jobs_returns_when_another_thread_enqueues(tmp_path: Path) -> None:
    for wakeup in ("doorbell", "poll"):
        path = tmp_path / f"{wakeup}.db"
        waiter, producer = open_queue(path, sqlite_wakeup=wakeup), open_queue(path)
        results: list[bool] = []
        thread = threading.Thread(
            target=lambda q=waiter, out=results: out.append(q.wait_for_jobs(60))
        )
        thread.start()
        producer.enqueue("job")
        thread.join(65)
        assert results == [True]
        assert waiter.wait_for_jobs(0) is True  # already there: no waiting at all
        waiter.close()
        producer.close()


def test_a_dead_waiters_socket_is_removed_by_the_next_ring(tmp_path: Path) -> None:
    bell = Doorbell(str(tmp_path / "q.db"))
    os.makedirs(bell.directory)
    stale = os.path.join(bell.directory, "999999-dead.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(stale)
    sock.close()  # the file stays, as when a process is killed
    assert os.path.exists(stale)
    assert bell.ring() == 0
    assert not os.path.exists(stale)


def test_closing_the_queue_removes_its_socket(tmp_path: Path) -> None:
    queue = open_queue(tmp_path / "q.db")
    assert queue.wait_for_jobs(0.01) is False
    assert queue.driver.doorbell is not None
    assert len(os.listdir(queue.driver.doorbell.directory)) == 1
    queue.close()
    assert os.listdir(queue.driver.doorbell.directory) == []


def test_a_path_longer_than_a_unix_socket_address_still_rings(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    queue = open_queue(deep / "q.db")
    queue.enqueue("x")  # creates nothing to ring yet: no error
    assert ring_received_after(deep / "q.db", lambda: queue.enqueue("y"))
    queue.close()


def test_without_a_writable_directory_waiting_falls_back_to_polling(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    queue = open_queue(path)
    assert queue.driver.doorbell is not None
    Path(queue.driver.doorbell.directory).write_text("not a directory")  # blocks the doorbell
    assert queue.driver.doorbell.listen() is False
    producer = open_queue(path)
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(queue.wait_for_jobs(60)))
    thread.start()
    producer.enqueue("job")  # its ring fails quietly; the waiter's poll finds the job
    thread.join(65)
    assert results == [True]
    queue.close()
    producer.close()
