"""Connections opened for threads that have ended are closed, not collected."""

from __future__ import annotations

import threading
from pathlib import Path

from pqcore import open_queue


def test_connections_of_finished_threads_are_closed(tmp_path: Path) -> None:
    queue = open_queue(str(tmp_path / "q.db"))
    try:
        for n in range(20):  # like Streamlit: every rerun on a fresh thread
            worker = threading.Thread(target=queue.enqueue, args=(f"job {n}",))
            worker.start()
            worker.join()
        queue.stats()  # this thread opens one more and prunes the ended threads' ones
        assert len(queue.driver._all) <= 2
        assert queue.stats().total == 20
    finally:
        queue.close()
