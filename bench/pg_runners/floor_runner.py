"""The cost of one durable commit on the server: an INSERT of a few bytes per
autocommit transaction (psycopg, run with the project's Python). The only SQL in the
PostgreSQL bench: it is the floor the enqueue figures are read against."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import psycopg

URL = sys.argv[1]


class Floor:
    def __init__(self) -> None:
        self.conn = psycopg.connect(URL, autocommit=True)
        self.conn.execute("CREATE TABLE IF NOT EXISTS t (data text NOT NULL)")

    def enqueue_one(self, payloads: list[str]) -> None:
        for p in payloads:
            self.conn.execute("INSERT INTO t (data) VALUES (%s)", (p,))

    def held(self) -> int:
        row: Any = self.conn.execute("SELECT count(*) FROM t").fetchone()
        return int(row[0])


if __name__ == "__main__":
    sys.exit(harness.main(Floor, sys.argv[2:]))
