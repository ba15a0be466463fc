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

_UUID = r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
# 0x..., or a long run of hex digits with letters and digits both (an id, a digest).
_HEX = r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{12,}\b"
_REPLACE = (
    # Quoted text first: a quoted path or number is one placeholder, not several.
    (re.compile(r"'[^'\n]*'|\"[^\"\n]*\""), "<str>"),
    # URLs and paths: anything with a slash (or a Windows drive) up to the next space.
    (re.compile(r"\b[A-Za-z][\w+.-]*://[^\s,;()\[\]{}<>]*"), "<path>"),
    (re.compile(r"(?:\b[A-Za-z]:)?[\w.~\-]*[/\\][^\s,;:()\[\]{}<>]*"), "<path>"),
    (re.compile(_UUID), "<uuid>"),
    (re.compile(_HEX), "<hex>"),
    (re.compile(r"(?<![\w<])[-+]?\d+(?:[.,]\d+)*(?:[eE][-+]?\d+)?"), "<n>"),
)
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
    """The error's line with every varying part replaced by its placeholder."""
    line = error_line(error)
    for expression, placeholder in _REPLACE:
        line = expression.sub(placeholder, line)
    return line[:MAX_PATTERN]


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
