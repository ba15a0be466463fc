"""Grouping failure reasons: errors that differ only in what varies from job to job.

"PermanentError: job file /data/jobs/0042.txt does not exist" and the same message for
job 43 are one reason. ``error_line`` picks the line that names the failure (the first
line, or the last line of a Python traceback), ``error_pattern`` replaces what varies
(quoted text, paths, UUIDs, hex and decimal numbers) by a placeholder, and
``pattern_like`` turns a pattern back into a LIKE pattern, so a group can be listed,
counted and acted on as a filter (``JobFilter.error_group``).
"""

from __future__ import annotations

import re

PLACEHOLDERS = ("<str>", "<path>", "<uuid>", "<hex>", "<n>")
MAX_PATTERN = 160

_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")
# 0x..., or a long run of hex digits with letters and digits both (an id, a digest).
_HEX = re.compile(r"\b(?:0x[0-9a-fA-F]+|(?=[0-9a-fA-F]{12,}\b)[0-9a-fA-F]*\d[0-9a-fA-F]*)\b")
_HEX_RUN = re.compile(r"[0-9a-fA-F]{12}")
_NUMBER = re.compile(r"(?<![\w<])[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?")
_EDGES = "()[]{},;:.!?"  # punctuation around a word, kept as it is
_EXCEPTION = re.compile(r"^((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*)(?::|$)")
_PLACEHOLDER = re.compile("|".join(re.escape(p) for p in PLACEHOLDERS))


def error_line(error: str) -> str:
    """The line that says what failed: a traceback's last line, else the first line."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0].startswith("Traceback (most recent call last)"):
        return lines[-1]
    return lines[0]


def error_pattern(error: str) -> str:
    """The error's line with every varying part replaced by its placeholder: quoted
    text, then words that hold a slash (paths, URLs), UUIDs, hex ids, numbers."""
    line = _QUOTED.sub("<str>", error_line(error))
    words = []
    for word in line.split(" "):
        core = word.strip(_EDGES)
        if core and ("/" in core or "\\" in core) and core != "<str>":
            start = word.index(core)
            word = word[:start] + "<path>" + word[start + len(core) :]
        words.append(word)
    line = " ".join(words)
    if "-" in line:
        line = _UUID.sub("<uuid>", line)
    if _HEX_RUN.search(line) or "0x" in line:
        line = _HEX.sub(_hex, line)
    if any(c.isdigit() for c in line):
        line = _NUMBER.sub("<n>", line)
    return line[:MAX_PATTERN]


def _hex(match: re.Match[str]) -> str:
    text = match.group()
    return "<hex>" if any(c.isalpha() for c in text) else text


def exception_name(pattern: str) -> str:
    """The exception type a pattern starts with ("PermanentError: ..."), else ""."""
    match = _EXCEPTION.match(pattern)
    if not match or not (":" in pattern or match.group(1)[:1].isupper()):
        return ""
    return match.group(1)


def pattern_like(pattern: str) -> str:
    """A LIKE pattern (escape character ``\\``) matching what ``pattern`` stands for.

    A pattern cut at ``MAX_PATTERN`` characters matches any continuation."""
    parts = _PLACEHOLDER.split(pattern)
    escaped = [p.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") for p in parts]
    like = "%".join(escaped)
    if len(pattern) >= MAX_PATTERN:
        like += "%"
    return like
