"""A second benchmark run on the same day writes beside the first, not over it."""

from __future__ import annotations

import time
from pathlib import Path

from bench.report import results_stem


def test_a_later_run_the_same_day_gets_its_own_name(tmp_path: Path) -> None:
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert results_stem(tmp_path) == today
    (tmp_path / f"{today}.md").write_text("first run")
    (tmp_path / f"{today}.png").write_bytes(b"")
    assert results_stem(tmp_path) == f"{today}-2"
    (tmp_path / f"{today}-2.md").write_text("second run")
    assert results_stem(tmp_path) == f"{today}-3"
    # The PostgreSQL bench's file is a different name: the SQLite runs do not count.
    assert results_stem(tmp_path, "-pg") == f"{today}-pg"
    (tmp_path / f"{today}-pg.md").write_text("pg run")
    assert results_stem(tmp_path, "-pg") == f"{today}-pg-2"
