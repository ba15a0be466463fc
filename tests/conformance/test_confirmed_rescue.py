"""A wall-clock step of the queue's clock rescues no lease whose holder is alive.

The queue's clock here is a fake one that a test steps by an hour, as an NTP correction
or a VM resumed from a pause steps the database host's (on SQLite: the one host's)
clock; the rescuer's monotonic clock is a second fake one that no step touches.
``rescue_expired`` trusts the queue's clock and takes back every lease at once;
``ConfirmedRescue`` rescues a lease found expired only if a second look, half that
lease later on the monotonic clock, finds it still unrenewed.
"""

from __future__ import annotations

from pqcore import JobState, Queue
from pqcore.rescue import ConfirmedRescue
from tests.backends import FakeClock
from tests.conformance.helpers import claim_one, token

HOUR = 3600.0


def test_a_step_of_the_queue_clock_rescues_no_renewed_lease(queue: Queue, clock: FakeClock) -> None:
    monotonic = FakeClock()
    rescuer = ConfirmedRescue(queue, clock=monotonic)
    queue.enqueue("alive")
    alive = claim_one(queue, "alive", lease_seconds=6)
    clock.advance(HOUR)  # the step: every lease looks an hour overdue
    assert rescuer.rescue_expired() == []  # first look: seen, not rescued
    assert rescuer.awaiting == 1
    monotonic.advance(2)  # the holder's next heartbeat (every lease/3)...
    clock.advance(2)
    queue.heartbeat(alive.id, token(alive), lease_seconds=6)  # ...renews from the new now
    monotonic.advance(1)
    clock.advance(1)
    assert rescuer.rescue_expired() == []  # renewed: no longer expired, forgotten
    assert rescuer.awaiting == 0
    assert queue.get(alive.id).status is JobState.PROCESSING


def test_a_lease_renewed_between_the_looks_is_not_rescued(queue: Queue, clock: FakeClock) -> None:
    """Even if still expired at the second look, a lease that changed is a new lease."""
    monotonic = FakeClock()
    rescuer = ConfirmedRescue(queue, clock=monotonic)
    queue.enqueue("slow-heartbeats")
    job = claim_one(queue, "slow-heartbeats", lease_seconds=6)
    clock.advance(7)
    assert rescuer.rescue_expired() == []
    queue.heartbeat(job.id, token(job), lease_seconds=1)  # renewed, with a short lease
    clock.advance(2)
    monotonic.advance(3)  # half of the first lease: the first sighting would be due
    assert rescuer.rescue_expired() == []  # a new lease: its own first look
    monotonic.advance(0.5)  # half of the new 1 s lease
    [rescued] = rescuer.rescue_expired()
    assert rescued.id == job.id and rescued.status is JobState.PENDING


def test_an_unrenewed_lease_is_rescued_after_half_a_lease(queue: Queue, clock: FakeClock) -> None:
    monotonic = FakeClock()
    rescuer = ConfirmedRescue(queue, clock=monotonic)
    queue.enqueue("crashed")
    crashed = claim_one(queue, "crashed", lease_seconds=6)
    clock.advance(HOUR)
    assert rescuer.rescue_expired() == []
    monotonic.advance(2.9)
    assert rescuer.rescue_expired() == []  # not yet half of its 6 s lease
    monotonic.advance(0.1)
    [rescued] = rescuer.rescue_expired()
    assert rescued.id == crashed.id and rescued.status is JobState.PENDING
    last = queue.history(crashed.id)[-1]
    assert (last.action, last.actor) == ("rescue", "manager")
    assert last.detail is not None and "lease expired" in last.detail
    assert rescuer.awaiting == 0
    # Without the confirmation the step alone would have taken it: rescue_expired trusts
    # the clock (the behaviour the confirmation exists to avoid).
    queue.enqueue("alive")
    other = claim_one(queue, "alive", lease_seconds=6)
    clock.advance(HOUR)
    assert [j.id for j in queue.rescue_expired()] == [other.id]


def test_a_job_settled_between_the_looks_stays_settled(queue: Queue, clock: FakeClock) -> None:
    monotonic = FakeClock()
    rescuer = ConfirmedRescue(queue, clock=monotonic)
    queue.enqueue("late")
    job = claim_one(queue, "late", lease_seconds=4)
    clock.advance(5)
    assert rescuer.rescue_expired() == []
    queue.complete(job.id, token(job))  # the holder was alive after all
    monotonic.advance(10)
    assert rescuer.rescue_expired() == []
    # rescue_unrenewed itself refuses a lease it did not see as it is now.
    assert queue.rescue_unrenewed([job]) == []
    assert queue.get(job.id).status is JobState.DONE
