"""A throwaway PostgreSQL cluster for the tests: Debian's server binaries, a temp dir, a free port.

The cluster starts on first use and stops when the test process exits. PostgreSQL refuses
to run as root, so when we are root it runs as the unprivileged ``postgres`` OS user
(``runuser``), with its data and socket directories in a temp folder that user owns.
Each test gets a database of its own (``CREATE DATABASE`` is fast on an empty template),
dropped again when the test ends.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import free_port

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
SUPERUSER = "postgres"
PASSWORD = "pq-test-secret"  # a throwaway cluster on loopback; tests also check bad passwords


def find_binaries() -> Path | None:
    """The newest installed PostgreSQL server's bin directory, or None."""
    for folder in PG_BIN_DIRS:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and Path(found).with_name("initdb").exists() else None


class PostgresCluster:
    """One running server. ``url(db)`` gives a connection URL over TCP on loopback."""

    def __init__(self, bin_dir: Path, root: Path | None = None) -> None:
        self.bin_dir = bin_dir
        self.root = Path(root or tempfile.mkdtemp(prefix="pq-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.port = 0
        self._as_user: list[str] = []
        self._names = itertools.count(1)
        self._lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> PostgresCluster:
        self.sockets.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:  # the server will not run as root
            owner = pwd.getpwnam(SUPERUSER)
            for path in (self.root, self.sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            self._as_user = ["runuser", "-u", SUPERUSER, "--"]
        password_file = self.root / "pwfile"
        password_file.write_text(PASSWORD + "\n")
        if self._as_user:
            os.chown(password_file, pwd.getpwnam(SUPERUSER).pw_uid, -1)
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={password_file}",
            "-E", "UTF8", "--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256",
            "--no-sync",
        )  # fmt: skip
        for attempt in range(5):  # a port picked free can be taken before the server binds it
            self.port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port}"
                f" -c unix_socket_directories={self.sockets} -c max_connections=200"
            )
            result = self._run(
                "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                "-o", options, "-w", "-t", "60", "start", check=False,
            )  # fmt: skip
            if result.returncode == 0:
                atexit.register(self.stop)
                return self
            if attempt == 4:
                raise RuntimeError(f"PostgreSQL did not start: {self.log_tail()}")
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self.data.exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.root / "server.log").read_text().splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [*self._as_user, str(self.bin_dir / tool), *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    # ------------------------------------------------------------ databases

    def url(self, database: str = "postgres", *, user: str = SUPERUSER) -> str:
        return f"postgresql://{user}:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def admin(self, statement: str) -> None:
        """Run one statement as the superuser outside a transaction (CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def create_database(self, prefix: str = "pqtest") -> str:
        with self._lock:
            name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        self.admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def database(self, prefix: str = "pqtest") -> Iterator[str]:
        """A fresh empty database for one test; yields its URL."""
        name = self.create_database(prefix)
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)


_cluster: PostgresCluster | None = None
_cluster_lock = threading.Lock()


def cluster() -> PostgresCluster:
    """The test process's cluster, started on first use (skips, or fails in CI, without
    PostgreSQL installed)."""
    global _cluster
    with _cluster_lock:
        if _cluster is None:
            from tests.conftest import require

            bin_dir = find_binaries()
            require(bin_dir is not None, "PostgreSQL server binaries (initdb, pg_ctl) missing")
            require(
                os.geteuid() != 0 or shutil.which("runuser") is not None,
                "running as root without runuser to start PostgreSQL as its own user",
            )
            assert bin_dir is not None
            started = time.monotonic()
            _cluster = PostgresCluster(bin_dir).start()
            print(f"PostgreSQL test cluster on port {_cluster.port} "
                  f"({time.monotonic() - started:.1f}s to start)")  # fmt: skip
        return _cluster
