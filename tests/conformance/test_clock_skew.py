"""Two queues on one database whose host clocks disagree by 10 minutes.

The other queue runs in a process of its own under libfaketime (``faketime``), so its
``time.time()`` is really wrong, as on a host whose clock drifted: nothing is injected.
On PostgreSQL every lease, rescue and retry time is decided by the server's clock, so
neither queue rescues the other's live job and no retry runs early. On SQLite every
process of one database file runs on one host, whose clock they share: the driver
takes the host's time, and a process whose clock alone is wrong does see leases as
expired; the test pins that down, so the difference stays documented and deliberate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from pqcore import EnqueueRequest, JobState, QueueSettings, open_queue
from tests.backends import BackendHandle

SKEW = "-10m"  # the other host's clock is ten minutes behind
CHILD = textwrap.dedent(
    """
    import json, sys
    from pqcore import QueueSettings, open_queue
    url, action = sys.argv[1], sys.argv[2]
    with open_queue(url, settings=QueueSettings(db=url, backoff_base_seconds=60,
                                                backoff_cap_seconds=60)) as queue:
        if action == "claim":
            [job] = queue.claim("behind", lease_seconds=30)
            print(json.dumps({"id": job.id, "token": job.lease_token}))
        elif action == "heartbeat":
            print(json.dumps({"expires": queue.heartbeat(int(sys.argv[3]), sys.argv[4],
                                                          lease_seconds=30)}))
        elif action == "maintain":
            rescued = [j.id for j in queue.rescue_expired()]
            retried = [j.id for j in queue.schedule_retries()]
            print(json.dumps({"rescued": rescued, "retried": retried}))
    """
)


def run_behind(url: str, *args: str) -> dict[str, object]:
    """Run one queue call in a process whose clock is ten minutes behind."""
    faketime = shutil.which("faketime")
    if faketime is None:
        if os.environ.get("CI"):
            pytest.fail("faketime is missing: deploy/scripts/ensure-system.sh installs it")
        pytest.skip("faketime is not installed (Debian package faketime)")
    env = {**os.environ, "DONT_FAKE_MONOTONIC": "1"}
    done = subprocess.run(
        [faketime, "-f", SKEW, sys.executable, "-c", CHILD, url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_neither_queue_rescues_the_others_live_job(backend: BackendHandle) -> None:
    settings = QueueSettings(db=backend.url, backoff_base_seconds=60, backoff_cap_seconds=60)
    with open_queue(backend.url, settings=settings) as here:
        # Runnable on any clock (SQLite's host behind by 10 minutes would wait for it).
        here.enqueue_many([EnqueueRequest("held-behind", run_at=1.0)])
        here.enqueue_many(["held-here", "failed-here"])
        behind = run_behind(backend.url, "claim")  # claimed by the host that is behind
        [held_here, failed_here] = here.claim("here", limit=2, lease_seconds=30)
        here.fail(failed_here.id, failed_here.lease_token or "", "try again in a minute")

        rescued_by_here = [j.id for j in here.rescue_expired()]
        seen_from_behind = run_behind(backend.url, "maintain")

        if backend.name == "postgresql":
            # The server's clock decides: both leases are 30 s from the server's now, and
            # the retry is due a minute after the server's now.
            assert rescued_by_here == []
            assert seen_from_behind == {"rescued": [], "retried": []}
            held = here.get(int(behind["id"]))  # type: ignore[call-overload]
            assert held.status is JobState.PROCESSING and held.consumer_id == "behind"
            # The host that is behind still renews its lease by 30 s of server time.
            renewed = run_behind(backend.url, "heartbeat", str(behind["id"]), str(behind["token"]))
            assert float(renewed["expires"]) > float(held.lease_expires_at or 0) - 1  # type: ignore[arg-type]
        else:
            # One host, one clock: the process whose clock alone is 10 minutes behind
            # wrote a lease that this host's clock finds long expired.
            assert rescued_by_here == [behind["id"]]
        assert here.get(held_here.id).status is JobState.PROCESSING
        assert here.get(failed_here.id).status is JobState.FAILED
        assert here.doctor() == []
