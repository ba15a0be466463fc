"""Power cuts under the real system: nothing acknowledged is lost at synchronous=FULL,
and what NORMAL (and the claim that skips fsync) gives up is measured.

``PQ_POWERLOSS_CUTS`` sets the number of cuts per run (default 50; e.g. 500 for the long
run). Figures go to tests/artifacts/powerloss-<mode>.json and are printed (-s).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.powerloss.cutloop import CutLoop, sqlite_note, write_figures
from tests.powerloss.faultfs import FaultFS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CUTS = int(os.environ.get("PQ_POWERLOSS_CUTS") or 50)
SEED = int(os.environ.get("PQ_POWERLOSS_SEED") or 20261201)
ARTIFACTS = ROOT / "tests" / "artifacts"


def run(tmp_path: Path, faultfs: FaultFS, synchronous: str) -> CutLoop:
    loop = CutLoop(tmp_path, faultfs, synchronous=synchronous, cuts=CUTS, seed=SEED)
    figures = loop.run()
    write_figures(figures, ARTIFACTS / f"powerloss-{synchronous.lower()}.json")
    print(f"\npower loss: {figures.summary()}; time {dict(loop.timings)}; {sqlite_note()}")
    for problem in figures.problems[:20]:
        print(f"  problem: {problem}")
    return loop


@pytest.mark.timeout(max(1800, CUTS * 10))
def test_power_cuts_lose_nothing_acknowledged_at_full(tmp_path: Path, faultfs: FaultFS) -> None:
    f = run(tmp_path, faultfs, "FULL").figures
    assert f.cuts == CUTS
    assert f.problems == []
    assert f.lost == 0 and f.lost_enqueues == f.lost_completions == 0
    assert f.double_completions == 0 and f.duplicate_completion_lines == 0
    assert f.doctor_problems == 0
    assert f.jobs == f.jobs_done_at_end > 0
    # The run exercised what it claims to: work was acknowledged of every kind, and cuts
    # landed inside commits and dropped unsynced WAL data.
    assert f.enqueues_acked > 0 and f.completions_acked > 0 and f.operator_actions_acked > 0
    assert f.claims_acked > 0
    assert f.cuts_inside_wal_fsync > 0 and f.cuts_with_unsynced_wal > 0
    assert f.torn_cuts > 0


@pytest.mark.timeout(max(1800, CUTS * 10))
def test_power_cuts_at_normal_are_measured(tmp_path: Path, faultfs: FaultFS) -> None:
    """NORMAL may lose the last commits before a cut; integrity must hold all the same."""
    f = run(tmp_path, faultfs, "NORMAL").figures
    assert f.cuts == CUTS
    assert f.doctor_problems == 0
    assert f.double_completions == 0 and f.duplicate_completion_lines == 0
    assert f.jobs == f.jobs_done_at_end > 0
    assert f.problems == []
