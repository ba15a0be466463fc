"""Named SQL queries: the shared ones (``queries.sql`` and one file per feature, listed
in ``SHARED``) and each dialect's overrides (``sqlite.sql``, ``postgresql.sql``), rendered
for a driver's dialect.

A query starts at a ``-- name: NAME`` line and runs to the next one. Comment lines in a
body are dropped. A name starting with ``_`` is a fragment, not a query: other queries
take it in as ``{_name}``. A dialect file may override a shared query under the same name (its
comment says why) or add one the other dialect does without.

Rendering turns the shared spelling into the driver's: ``:name`` placeholders, ``:now``
(the queue's clock), ``IN_LIST(:name)`` and the ``{macro}`` words listed at the top of
``queries.sql``. Keeping the SQL in files of its own keeps it reviewable in one place
and out of the Python code.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping
from importlib import resources

from pqcore.states import ACTIVE_STATES, FINAL_STATES, JobState

_NAME_LINE = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)
_MACRO = re.compile(r"\{(\w+)\}")
_IN_LIST = re.compile(r"IN_LIST\(:(\w+)\)")
_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
# Written once for every dialect; a name may appear in only one of them.
SHARED = ("queries", "controls", "schedules", "settings", "tasks")


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: one per driver
class Dialect:
    """How one database spells what ``queries.sql`` writes once."""

    name: str  # also the name of its overrides file
    param: str  # a placeholder, with {name}
    now: str  # the clock: what ``:now`` becomes, with {param} for the caller's value
    in_list: str  # membership in a list parameter, with {param}
    macros: Mapping[str, str]
    escape_percent: bool = False  # psycopg reads % as the start of a placeholder


def states_sql(states: frozenset[JobState]) -> str:
    """``('a', 'b')``, in the enum's order: generated, so the SQL cannot drift."""
    return "(" + ", ".join(f"'{s.value}'" for s in JobState if s in states) + ")"


STATE_MACROS = {
    "active_states": states_sql(ACTIVE_STATES),
    "final_states": states_sql(FINAL_STATES),
}


def parse(text: str, source: str) -> dict[str, str]:
    parts = _NAME_LINE.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=False):
        if name in queries:
            raise RuntimeError(f"query {name!r} is defined twice in {source}")
        lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
        queries[name] = "\n".join(lines).strip().rstrip(";").strip()
    return queries


def _read(stem: str) -> str:
    return resources.files(__package__).joinpath(f"{stem}.sql").read_text(encoding="utf-8")


@functools.cache
def load_raw(stem: str) -> dict[str, str]:
    """The queries of one file as written (pq migrate-backend's own files)."""
    return parse(_read(stem), f"{stem}.sql")


@functools.cache
def load_shared() -> dict[str, str]:
    merged: dict[str, str] = {}
    for stem in SHARED:
        queries = load_raw(stem)
        twice = merged.keys() & queries.keys()
        if twice:
            raise RuntimeError(f"{stem}.sql defines {sorted(twice)} again")
        merged.update(queries)
    return merged


def shared_names() -> frozenset[str]:
    return frozenset(load_shared())


def load(dialect: Dialect) -> dict[str, str]:
    """Every query for ``dialect``: the shared ones, overridden by the dialect's file."""
    merged = {**load_shared(), **load_raw(dialect.name)}
    fragments = {name: body for name, body in merged.items() if name.startswith("_")}
    return {
        name: render(body, dialect, fragments)
        for name, body in merged.items()
        if not name.startswith("_")
    }


@functools.lru_cache(maxsize=512)
def render_dynamic(text: str, dialect: Dialect) -> str:
    """A statement built at run time (a job filter), rendered once per text."""
    return render(text, dialect)


def render(text: str, dialect: Dialect, fragments: Mapping[str, str] | None = None) -> str:
    """Shared spelling -> the dialect's."""
    macros = {**STATE_MACROS, **dialect.macros, **(fragments or {})}

    def macro(match: re.Match[str]) -> str:
        try:
            return macros[match.group(1)]
        except KeyError:
            raise RuntimeError(f"unknown SQL macro {{{match.group(1)}}}") from None

    text = _MACRO.sub(macro, _MACRO.sub(macro, text))  # a fragment may hold macros
    text = _IN_LIST.sub(lambda m: dialect.in_list.format(param=":" + m.group(1)), text)
    if dialect.escape_percent:
        text = text.replace("%", "%%")

    def param(match: re.Match[str]) -> str:
        placeholder = dialect.param.format(name=match.group(1))
        return dialect.now.format(param=placeholder) if match.group(1) == "now" else placeholder

    return _PARAM.sub(param, text)


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


def merged_names(dialect_name: str) -> frozenset[str]:
    return frozenset({**load_shared(), **load_raw(dialect_name)})
