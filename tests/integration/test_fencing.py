"""Fencing with real processes: a holder frozen past its lease (SIGSTOP) loses the job to
another process; when it wakes up (SIGCONT) its late complete is refused."""

from __future__ import annotations

import signal

import pytest

from pqcore import JobState
from tests.backends import BackendHandle
from tests.integration.conftest import Child
from tests.support import wait_for

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("rival_finishes_first", [False, True], ids=["rival-holding", "rival-done"])
def test_frozen_holder_cannot_complete_after_its_lease_was_taken(
    backend: BackendHandle, children: list[Child], rival_finishes_first: bool
) -> None:
    queue = backend.make()
    job = queue.enqueue("jobs/fenced")
    zombie = Child("hold", backend.url, "--consumer", "zombie", "--lease", "1")
    children.append(zombie)
    _, claimed_id, zombie_token = zombie.read_line().split()
    assert int(claimed_id) == job.id
    zombie.signal(signal.SIGSTOP)

    rescued = wait_for(queue.rescue_expired, timeout=20, what="the frozen holder's lease to expire")
    assert [j.id for j in rescued] == [job.id]

    rival = Child("hold", backend.url, "--consumer", "rival", "--lease", "30")
    children.append(rival)
    _, rival_id, rival_token = rival.read_line().split()
    assert int(rival_id) == job.id and rival_token != zombie_token
    if rival_finishes_first:
        rival.send("go")
        assert rival.read_line() == f"completed {job.id}"

    # The zombie wakes up and reports: while the rival holds the job (only the token
    # tells them apart) or after the rival finished it.
    zombie.signal(signal.SIGCONT)
    zombie.send("go")
    assert zombie.read_line() == f"lease-lost {job.id}"
    assert zombie.wait() == 0
    if not rival_finishes_first:
        held = queue.get(job.id)
        assert held.status is JobState.PROCESSING and held.lease_token == rival_token
        rival.send("go")
        assert rival.read_line() == f"completed {job.id}"
    assert rival.wait() == 0

    final = queue.get(job.id)
    assert final.status is JobState.DONE and final.consumer_id == "rival"
    events = queue.history(job.id)
    assert [e.action for e in events] == ["enqueue", "claim", "rescue", "claim", "complete"]
    assert [e.actor for e in events if e.action == "complete"] == ["rival"]
    assert queue.doctor() == []
