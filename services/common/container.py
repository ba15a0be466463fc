"""Inside a container, a relative SQLite path is a private database: refuse it at start.

Every role of the Docker stack must open the one database on the shared volume
(``/data/queue.db``). A relative path such as ``var/queue.db`` resolves against the
container's own working directory, so each container would silently get its own empty
queue: the producer's jobs pile up where no consumer looks, while every container
reports healthy. The pq images set ``PQ_IN_CONTAINER=1``; with it, a service refuses a
relative (or in-memory) SQLite database with one clear error instead of starting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

IN_CONTAINER_ENV = "PQ_IN_CONTAINER"
SHARED_DATABASE_HINT = (
    "set an absolute path on the shared volume (the compose stack's PQ_STACK_DB, default "
    "/data/queue.db) or a postgresql:// URL"
)


def in_container(env: Mapping[str, str] | None = None) -> bool:
    """True when the process runs in a pq image (``PQ_IN_CONTAINER`` is 1/true/yes/on)."""
    env = os.environ if env is None else env
    return env.get(IN_CONTAINER_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _sqlite_file(db: str) -> str | None:
    """The file path of a SQLite database setting, or None for any other URL."""
    if db.startswith("sqlite://"):
        path = db[len("sqlite://") :]
        # sqlite:///var/q.db is relative (three slashes), sqlite:////abs/q.db absolute.
        return path[1:] if path.startswith("/") else path
    if "://" in db:
        return None  # postgresql://..., or a scheme open_queue rejects with its own error
    return db


def container_database_problem(db: str, env: Mapping[str, str] | None = None) -> str | None:
    """Why ``db`` must not be used here, in one sentence; None when it is fine.

    Only applies inside a container: on a host, a relative path is the normal local run
    (``make run`` uses ``var/queue.db`` under the repository)."""
    if not in_container(env):
        return None
    path = _sqlite_file(db)
    if path is None or os.path.isabs(path):
        return None
    if path in ("", ":memory:"):
        what = "an in-memory SQLite database"
    else:
        what = (
            f"a relative SQLite path, which inside this container is its own private file "
            f"{os.path.abspath(path)}"
        )
    return (
        f"queue database {db!r} is {what}, not the database the other roles share; "
        f"{SHARED_DATABASE_HINT}"
    )
