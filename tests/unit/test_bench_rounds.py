"""The bench's arithmetic: rounds keep their order, ratios pair rounds, failures drop out."""

from __future__ import annotations

from pathlib import Path

from bench.report import _fmt_rate, ratio_value
from bench.workloads import Result, drain, round_ratios


def test_combine_keeps_round_order_and_marks_failed_rounds() -> None:
    rounds = [Result(rate=30.0), Result(note="failed: x"), Result(rate=10.0), Result(rate=20.0)]
    combined = Result.combine(rounds)
    assert combined.rates == [30.0, None, 10.0, 20.0]
    assert combined.rate == 20.0
    assert combined.spread == (10.0, 30.0)
    assert "(1 failed)" in _fmt_rate(combined)


def test_ratios_are_taken_round_by_round() -> None:
    # Two of three rounds say 2x; the ratio of the medians (200 / 1000) would say 0.2x,
    # pairing rounds that never ran together.
    pq = Result.combine([Result(rate=200.0), Result(rate=20.0), Result(rate=2000.0)])
    peer = Result.combine([Result(rate=100.0), Result(rate=1000.0), Result(rate=1000.0)])
    assert round_ratios(pq, peer) == [2.0, 0.02, 2.0]
    assert ratio_value(pq, peer) == 2.0


def test_a_round_either_side_failed_is_left_out() -> None:
    pq = Result.combine([Result(rate=4.0), Result(rate=6.0), Result(note="failed: y")])
    peer = Result.combine([Result(note="failed: z"), Result(rate=3.0), Result(rate=1.0)])
    assert round_ratios(pq, peer) == [2.0]


def test_a_capped_peer_drain_counts_what_it_left_and_loses_nothing(tmp_path: Path) -> None:
    """litequeue at its real pace, stopped after half a second: far from done, and every
    job it did not get to is still in its queue (so none counts as lost)."""
    result = drain("litequeue", tmp_path, "NORMAL", 3000, 2, seconds=0.5)
    assert result.capped.startswith("time cap: ") and result.capped.endswith(
        "of 3,000 done in 0.5 s"
    )
    assert (result.duplicates, result.losses, result.errors) == (0, 0, 0)
    assert result.rate is not None and result.rate > 0
    assert "(time cap)" in _fmt_rate(Result.combine([result]))
    whole = drain("pq", tmp_path, "NORMAL", 3000, 2)
    assert (whole.capped, whole.duplicates, whole.losses) == ("", 0, 0)
