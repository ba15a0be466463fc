"""How a writer waits for SQLite's write lock. SQLite keeps no queue of writers: a
waiter gets the lock only by trying while it is free, and between a Worker's
transactions it is free for a fraction of a millisecond; outcomes waiting for it must
be visible within the Worker's max_ack_delay (50 ms)."""

from __future__ import annotations

import pytest

from pqcore.drivers.sqlite import LOCK_STEP_MIN, lock_pause


def _schedule(waited_at: list[float]) -> list[float]:
    pause, pauses = LOCK_STEP_MIN, []
    for waited in waited_at:
        pause = lock_pause(pause, waited)
        pauses.append(pause)
    return pauses


def test_for_the_first_50_ms_a_waiter_tries_at_least_every_half_millisecond() -> None:
    pauses = _schedule([k * 0.001 for k in range(50)])
    assert LOCK_STEP_MIN <= 0.0001
    assert max(pauses) == pytest.approx(0.0005)  # 2 ms steps missed the gaps for 90 ms


def test_a_long_wait_backs_off_to_two_milliseconds_and_no_further() -> None:
    pauses = _schedule([0.05 + k * 0.01 for k in range(50)])
    assert pauses[-1] == pytest.approx(0.002)
    assert max(pauses) == pytest.approx(0.002)
