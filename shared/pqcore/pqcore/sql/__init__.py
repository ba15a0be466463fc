"""Named SQL queries, one file per backend (``sqlite.sql``, ``postgresql.sql``).

A query starts at a ``-- name: NAME`` line and runs to the next one. Keeping the SQL
in files of its own keeps it reviewable in one place and out of the Python code.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

_NAME_LINE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


@functools.cache
def load(backend: str) -> dict[str, str]:
    text = resources.files(__package__).joinpath(f"{backend}.sql").read_text(encoding="utf-8")
    parts = _NAME_LINE.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=False):
        if name in queries:
            raise RuntimeError(f"query {name!r} is defined twice in {backend}.sql")
        queries[name] = body.strip().rstrip(";").strip()
    return queries


def load_migrations(backend: str) -> list[tuple[int, str, str]]:
    """Migrations as (version, name, sql), in version order, from ``migrations/<backend>/``."""
    folder = resources.files("pqcore").joinpath("migrations", backend)
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"{backend} migrations are not numbered 1..n: {versions}")
    return found
