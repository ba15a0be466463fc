"""ClockWatch: how far the queue's clock stepped forward against the monotonic clock."""

from __future__ import annotations

from pqcore.rescue import ClockWatch
from tests.backends import FakeClock

HOUR = 3600.0


def test_a_forward_step_counts_for_as_long_as_the_window_holds_a_sample_before_it() -> None:
    monotonic = FakeClock(1000.0)
    watch = ClockWatch(clock=monotonic)
    queue_now = 1_800_000_000.0
    for _ in range(3):  # the clocks run together: no step, whatever the jitter below 1 s
        watch.sample(queue_now, keep=HOUR)
        monotonic.advance(5)
        queue_now += 5.3
    assert watch.forward_step(HOUR) == 0.0
    queue_now += HOUR  # the step
    watch.sample(queue_now, keep=HOUR)
    assert abs(watch.forward_step(HOUR) - HOUR) < 1  # lengthens a timeout of an hour...
    assert watch.forward_step(1) == 0.0  # ...but not one whose window began after it
    monotonic.advance(HOUR)
    queue_now += HOUR
    watch.sample(queue_now, keep=HOUR)  # the samples before the step are forgotten
    assert watch.forward_step(HOUR) == 0.0


def test_a_backward_step_lengthens_nothing_and_no_sample_means_no_step() -> None:
    monotonic = FakeClock(0.0)
    watch = ClockWatch(clock=monotonic)
    assert watch.forward_step(HOUR) == 0.0
    watch.sample(1_800_000_000.0, keep=HOUR)
    monotonic.advance(5)
    watch.sample(1_800_000_005.0 - HOUR, keep=HOUR)  # jobs only look younger
    assert watch.forward_step(HOUR) == 0.0
