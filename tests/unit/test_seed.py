"""seed_finished_jobs: a big table of done jobs, each with a complete, valid history."""

from __future__ import annotations

from pathlib import Path

import pytest

from pqcore import InvalidArgument, JobState, QueueSettings, open_queue
from pqcore.testing import seed_finished_jobs


def test_seeded_jobs_are_done_with_the_history_of_a_real_run(tmp_path: Path) -> None:
    path = str(tmp_path / "q.db")
    queue = open_queue(path, settings=QueueSettings(db=path))
    queue.enqueue("before")
    assert seed_finished_jobs(queue, 250, actor="bench") == 250
    after = queue.enqueue("after")
    stats = queue.stats()
    assert stats.counts["done"] == 250 and stats.counts["pending"] == 2
    page = queue.list_jobs(limit=1, before_id=after.id)
    seeded = page.jobs[0]
    assert seeded.status is JobState.DONE and seeded.attempts == 1
    events = queue.history(seeded.id)
    assert [e.action for e in events] == ["enqueue", "claim", "complete"]
    assert {e.actor for e in events} == {"bench"}
    assert queue.doctor() == []
    held = queue.claim("c1", limit=5)  # seeded jobs are never claimed
    assert sorted(j.data for j in held) == ["after", "before"]
    with pytest.raises(InvalidArgument):
        seed_finished_jobs(queue, -1)
    queue.close()
