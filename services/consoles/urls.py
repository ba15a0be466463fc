"""Page state in the URL: the open job, filters, sort and page, so every view has an
address to bookmark or send, a reload keeps it, and Back and Forward step through it.

Streamlit pushes a browser history entry whenever a script changes the query string
and reruns the page with the URL's query when Back or Forward is pressed; so the URL
is the source of truth: a page reads its state from it (``sync``) before drawing its
widgets, and a widget change writes the URL (``push``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import streamlit as st

JOB = "job"


def params() -> dict[str, str]:
    return {name: st.query_params[name] for name in st.query_params}


def query_string(values: Mapping[str, str] | None = None) -> str:
    return urlencode(sorted((params() if values is None else values).items()))


def push(changes: Mapping[str, str | None]) -> None:
    """Set (a text) or remove (None or "") these parameters: one history entry."""
    wanted = params()
    for name, value in changes.items():
        if value is None or value == "":
            wanted.pop(name, None)
        else:
            wanted[name] = value
    if wanted != params():
        st.query_params.from_dict(wanted)


def job_param() -> str | None:
    value = st.query_params.get(JOB)
    return None if value is None or not value.strip() else value


def job_id() -> int | None:
    """The ``?job=ID`` of this URL, or None (also for an id that is not one)."""
    raw = job_param()
    if raw is None or not raw.strip().isdigit() or not 0 < int(raw) < 2**63:
        return None
    return int(raw)


@dataclasses.dataclass(frozen=True)
class Binding:
    """A widget (its session-state ``key``) kept in the URL parameter ``param``."""

    key: str
    param: str
    default: Any
    to_url: Callable[[Any], str | None] = str
    from_url: Callable[[str], Any] = str  # raises ValueError for a value it cannot read

    def read(self, values: Mapping[str, str]) -> Any:
        raw = values.get(self.param)
        if raw is None:
            return self.default
        try:
            return self.from_url(raw)
        except (ValueError, KeyError):
            return self.default

    def write(self, value: Any) -> str | None:
        return None if value == self.default else self.to_url(value)


def sync(bindings: Sequence[Binding], scope: str) -> None:
    """Before the widgets are drawn: when the URL changed other than through them (a
    link, a reload, Back or Forward) or the widgets were not drawn on the last run (a
    job's page was shown instead: Streamlit forgets them), set every widget from it."""
    current = query_string()
    kept = all(b.key in st.session_state for b in bindings)  # a page not drawn drops them
    if kept and st.session_state.get(f"{scope}_url") == current:
        return
    values = params()
    for binding in bindings:
        st.session_state[binding.key] = binding.read(values)
    st.session_state[f"{scope}_url"] = current


def store(bindings: Sequence[Binding], scope: str, changes: Mapping[str, str | None]) -> None:
    """After a widget changed (its on_change): the widgets' values, and ``changes``
    (a page cursor dropped, say), into the URL."""
    values: dict[str, str | None] = {
        b.param: b.write(st.session_state.get(b.key, b.default)) for b in bindings
    }
    values.update(changes)
    push(values)
    st.session_state[f"{scope}_url"] = query_string()
