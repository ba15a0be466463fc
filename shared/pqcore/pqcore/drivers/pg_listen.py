"""LISTEN/NOTIFY for the PostgreSQL driver: idle consumers sleep until work arrives.
A waiter LISTENs on a connection of its own (a pooled one cannot keep a LISTEN) before
it checks for jobs, so a NOTIFY committed between its check and its sleep still wakes
it (docs/architecture.md, "Wake-ups")."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

Connection = psycopg.Connection[dict[str, Any]]

CHANNEL = "pq_jobs"


class Listener:
    """Per-thread LISTEN connections; without one (it broke, or the server refused it)
    waiting falls back to sleeping, so callers still re-check on their poll interval."""

    def __init__(self, connect: Callable[[], Connection]) -> None:
        self._connect = connect
        self._local = threading.local()
        self._all: list[tuple[Connection, int]] = []  # with the pid that opened each
        self._lock = threading.Lock()

    def arm(self) -> None:
        """Start listening (if not yet) and forget notifications already received."""
        conn = self._connection()
        if conn is None:
            return
        try:
            for _ in conn.notifies(timeout=0):
                pass
        except psycopg.Error:
            conn.close()

    def wait(self, seconds: float) -> None:
        """Return at the first notification, or after ``seconds``."""
        conn = self._connection()
        if conn is None:
            time.sleep(seconds)
            return
        try:
            for _ in conn.notifies(timeout=seconds, stop_after=1):
                pass
        except psycopg.Error:  # a fresh connection is made on the next round
            conn.close()
            time.sleep(seconds)

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn, pid in conns:
            if pid == os.getpid():  # closing a parent's connection would end it for the parent
                conn.close()
        self._local = threading.local()

    def _connection(self) -> Connection | None:
        conn: Connection | None = getattr(self._local, "conn", None)
        # A forked child must not read its parent's socket: it listens on its own.
        if conn is not None and not conn.closed and self._local.pid == os.getpid():
            return conn
        try:
            conn = self._connect()
            conn.execute(f"LISTEN {CHANNEL}")
        except Exception:
            return None
        self._local.conn, self._local.pid = conn, os.getpid()
        with self._lock:
            self._all.append((conn, os.getpid()))
        return conn
