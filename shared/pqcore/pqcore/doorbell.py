"""Wake-ups for idle SQLite consumers on one host, instead of a tight poll: each waiting
thread binds a unix datagram socket in ``<db>-doorbell/``, and a commit that makes jobs
claimable sends one byte to every socket there. Waiters bind before they check, so no
ring is lost; anything that fails falls back to polling. Why this design, and not
inotify on the WAL: docs/architecture.md, "Wake-ups"."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import uuid

MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; keep a margin


class Doorbell:
    def __init__(self, db_path: str) -> None:
        self.directory = os.path.abspath(db_path) + "-doorbell"
        self._local = threading.local()
        self._mine: list[tuple[socket.socket, str]] = []
        self._lock = threading.Lock()
        self._sender: socket.socket | None = None
        self._sender_pid = 0
        self._listing: tuple[int, list[str]] = (-1, [])
        self._dir_fd: int | None = None
        self._dir_fd_pid = 0

    # ------------------------------------------------------------ waiting side

    def listen(self) -> bool:
        """Bind this thread's socket (once); False if wake-ups are unavailable here."""
        local = self._local
        if getattr(local, "pid", None) == os.getpid():
            return local.sock is not None
        local.pid, local.sock = os.getpid(), None
        try:
            os.makedirs(self.directory, exist_ok=True)
            name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                sock.bind(self._address(name))
                sock.setblocking(False)
            except OSError:
                sock.close()
                raise
        except OSError:
            return False
        local.sock, local.name = sock, name
        with self._lock:
            self._mine.append((sock, name))
        return True

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for a ring; True if one came."""
        sock: socket.socket | None = getattr(self._local, "sock", None)
        if sock is None or timeout <= 0:
            return False
        ready, _, _ = select.select([sock], [], [], timeout)
        if not ready:
            return False
        with contextlib.suppress(OSError):
            while sock.recv(64):  # drain: many rings mean the same thing
                pass
        return True

    # ------------------------------------------------------------ ringing side

    def ring(self) -> int:
        """Wake every waiter; returns how many sockets took the ring. Never raises."""
        try:
            names = self._peers()
            if not names:
                return 0
            sender = self._sender_socket()
        except OSError:
            return 0
        own = getattr(self._local, "name", None)
        rung = 0
        for name in names:
            if name == own:
                continue
            try:
                sender.sendto(b"!", self._address(name))
                rung += 1
            except BlockingIOError:
                pass  # its buffer is full: a wake-up is already pending there
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):  # nobody listens: a dead process's
                    os.unlink(os.path.join(self.directory, name))
            except OSError:
                pass
        return rung

    def close(self) -> None:
        with self._lock:
            mine, self._mine = self._mine, []
        for sock, name in mine:
            sock.close()
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.directory, name))
        self._local = threading.local()
        if self._sender is not None:
            self._sender.close()
            self._sender = None
        if self._dir_fd is not None and self._dir_fd_pid == os.getpid():
            with contextlib.suppress(OSError):
                os.close(self._dir_fd)
        self._dir_fd = None

    # ------------------------------------------------------------ helpers

    def _peers(self) -> list[str]:
        # The listing changes only when a waiter comes or goes: re-read it only when
        # the directory's mtime moved.
        try:
            stamp = os.stat(self.directory).st_mtime_ns
        except FileNotFoundError:
            return []
        if stamp != self._listing[0]:
            names = [n for n in os.listdir(self.directory) if n.endswith(".sock")]
            self._listing = (stamp, names)
        return self._listing[1]

    def _sender_socket(self) -> socket.socket:
        if self._sender is None or self._sender_pid != os.getpid():
            self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sender.setblocking(False)
            self._sender_pid = os.getpid()
        return self._sender

    def _address(self, name: str) -> str:
        path = os.path.join(self.directory, name)
        if len(path.encode()) <= MAX_SOCKET_PATH:
            return path
        # Too long for sun_path: reach the directory through a descriptor instead.
        if self._dir_fd is None or self._dir_fd_pid != os.getpid():
            self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            self._dir_fd_pid = os.getpid()
        return f"/proc/self/fd/{self._dir_fd}/{name}"
