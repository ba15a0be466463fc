"""Dependencies between jobs: a job enqueued with ``after=[...]`` is claimable only once
every job it names is done (written once for every backend; SQL in ``sql/tasks.sql``).

The enqueue writes the job with ``waiting_for`` = how many of those have not finished
yet, one ``job_dependencies`` row per job named, and flags each of them
``has_dependents``. From then on the database does the rest in the statement that moves
a flagged job into a final state (migrations 0005, ``jobs_dependents_resolve``): done
counts it off its dependents; permanently_failed or cancelled cancels the dependents whose
policy is ``cancel`` (their own dependents follow) and counts it off the ones that
``run`` anyway. A job reaches waiting_for = 0 exactly once per dependency row, whatever
path finished the job it waited for, and the claim statements never pick one above 0.

A job named that has already finished is resolved at the enqueue: done or a failure
with ``run`` does not count; a failure with ``cancel`` cancels the new job at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pqcore.core import QueueCore
from pqcore.driver import Session
from pqcore.exceptions import InvalidArgument
from pqcore.models import Dependency, Job
from pqcore.policy import dependency_cancel_move
from pqcore.states import DependencyFailure, JobState
from pqcore.validation import check_id


class Dependencies(QueueCore):
    def dependencies(self, job_id: int) -> list[Dependency]:
        """The jobs ``job_id`` waits (or waited) for, with the state each is in now."""
        params = {"id": check_id(job_id)}
        return [Dependency.from_row(r) for r in self._rows("dependencies_of_job", params)]

    def dependents(self, job_id: int) -> list[Dependency]:
        """The jobs waiting (or that waited) for ``job_id``, with the state each is in now."""
        params = {"id": check_id(job_id)}
        return [Dependency.from_row(r) for r in self._rows("dependents_of_job", params)]

    def _rows(self, query: str, params: Mapping[str, Any]) -> list[Any]:
        return self.driver.read(lambda s: s.all(query, params))

    def _lock_dependencies(self, session: Session, after: Sequence[int]) -> list[Any]:
        """The jobs named, locked until this transaction ends; every one must exist."""
        rows = session.all("dependencies_lock", {"ids": list(after)})
        missing = sorted(set(after) - {int(r["id"]) for r in rows})
        if missing:
            shown = ", ".join(str(i) for i in missing[:10])
            raise InvalidArgument(f"after= names jobs that do not exist: {shown}")
        return rows

    def _add_dependencies(
        self,
        session: Session,
        job: Job,
        locked: Sequence[Any],
        policy: DependencyFailure,
        now: float | None,
    ) -> Job:
        """The new job's dependency rows, and the flag on each job it waits for."""
        unfinished = []
        failed = None
        for row in locked:
            state = JobState(row["status"])
            if not state.is_final:
                unfinished.append(int(row["id"]))
            elif state is not JobState.DONE and failed is None:
                failed = (int(row["id"]), state.value)
            session.run(
                "dependency_insert",
                {
                    "job_id": job.id,
                    "depends_on": int(row["id"]),
                    "on_failure": policy.value,
                    "resolution": state.value if state.is_final else None,
                    "now": now,
                },
            )
        if unfinished:
            session.run("dependents_flag", {"ids": unfinished})
        if failed is not None and policy is DependencyFailure.CANCEL:
            return self._apply(session, job, dependency_cancel_move(*failed), "pq", now)
        return job


def count_unfinished(locked: Sequence[Any]) -> int:
    return sum(1 for row in locked if not JobState(row["status"]).is_final)
