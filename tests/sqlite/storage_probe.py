"""Child process for the SQLite storage tests that need a private mount namespace.

``python -m tests.sqlite.storage_probe ACTION PATH`` prints one JSON object.
"""

from __future__ import annotations

import json
import sys

from pqcore import DiskFull, PQError, open_queue


def read_only(path: str) -> dict[str, object]:
    """Read what is there, then try to write: the write must fail cleanly."""
    report: dict[str, object] = {}
    try:
        queue = open_queue(path, create=False)
        report["pending_before"] = queue.stats().counts["pending"]
        queue.enqueue("written-while-read-only")
        report["wrote"] = True
    except PQError as error:
        report["error"] = type(error).__name__
        report["message"] = str(error)
    return report


def fill(path: str) -> dict[str, object]:
    """Enqueue batches until the disk is full; report what was committed before that."""
    queue = open_queue(path)
    committed = 0
    for batch in range(10_000):
        try:
            queue.enqueue_many([f"fill-{batch}-{i}-" + "x" * 2000 for i in range(20)])
            committed += 20
        except DiskFull as error:
            return {"committed": committed, "error": "DiskFull", "message": str(error),
                    "total": queue.stats().total, "doctor": queue.doctor()}  # fmt: skip
    return {"committed": committed, "error": None}


if __name__ == "__main__":
    action, target = sys.argv[1], sys.argv[2]
    print(json.dumps({"read-only": read_only, "fill": fill}[action](target)))
