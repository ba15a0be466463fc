"""Random operations against a real queue, checked after every step against a tiny model.

The model knows, per job: status, attempts, the live lease token, lease expiry, run_at,
priority and dedupe key. It predicts which jobs a claim returns (priority, then run_at,
then id), what the manager moves, and which operator actions are refused; the queue must
agree exactly. Stale tokens of earlier leases are kept to play zombies.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pqcore import (
    EnqueueRequest,
    InvalidArgument,
    InvalidTransition,
    Job,
    JobNotFound,
    JobState,
    LeaseLost,
    Outcome,
    Queue,
)
from tests.backends import BACKENDS, FakeClock

P, R, D, F, X, C = (
    JobState.PENDING,
    JobState.PROCESSING,
    JobState.DONE,
    JobState.FAILED,
    JobState.PERMANENTLY_FAILED,
    JobState.CANCELLED,
)
ACTIVE = {P, R, F}
LEASE = 30.0
# The operator table, written out independently of pqcore.states.
OPERATOR_RULES = {
    "resubmit": ({F, X, C}, P),
    "cancel": ({P, R, F}, C),
    "mark_done": ({P, R, F, X}, D),
    "mark_failed": ({P, R, F}, X),
}


@dataclasses.dataclass
class ModelJob:
    id: int
    priority: int
    max_attempts: int
    dedupe_key: str | None
    run_at: float
    status: JobState = P
    attempts: int = 0
    token: str | None = None
    lease_expires_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None


class QueueModelMachine(RuleBasedStateMachine):
    backend_name = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        folder = Path(tempfile.mkdtemp(prefix="pq-model-"))
        self.stack.callback(shutil.rmtree, folder, True)
        handle = self.stack.enter_context(BACKENDS[self.backend_name](folder))
        self.clock = FakeClock()
        self.queue: Queue = handle.make(
            clock=self.clock, backoff_base_seconds=2.0, backoff_cap_seconds=20.0
        )
        self.jobs: dict[int, ModelJob] = {}
        self.stale_tokens: list[tuple[int, str]] = []
        # Flow control of the one queue every job is in.
        self.paused = False
        self.concurrency: int | None = None

    def teardown(self) -> None:
        try:
            assert self.queue.doctor() == []
        finally:
            self.stack.close()

    # ------------------------------------------------------------ helpers

    def held(self) -> list[ModelJob]:
        return [j for j in self.jobs.values() if j.status is R]

    def runnable(self) -> list[ModelJob]:
        """What a claim may get now, in claim order: nothing while the queue is paused,
        no more than the concurrency limit leaves room for."""
        if self.paused:
            return []
        ready = [j for j in self.jobs.values() if j.status is P and j.run_at <= self.clock.now]
        ready.sort(key=lambda j: (-j.priority, j.run_at, j.id))
        if self.concurrency is not None:
            return ready[: max(0, self.concurrency - len(self.held()))]
        return ready

    def drop_lease(self, job: ModelJob) -> None:
        assert job.token is not None
        self.stale_tokens.append((job.id, job.token))
        job.token = None
        job.lease_expires_at = None

    def add(self, job: Job, requested_key: str | None) -> None:
        if job.id in self.jobs:  # dedupe returned an existing active job
            model = self.jobs[job.id]
            assert requested_key is not None and model.dedupe_key == requested_key
            assert model.status in ACTIVE
            return
        if requested_key is not None:
            assert not any(
                j.dedupe_key == requested_key and j.status in ACTIVE for j in self.jobs.values()
            ), "a second active job got the same dedupe key"
        self.jobs[job.id] = ModelJob(
            job.id, job.priority, job.max_attempts, job.dedupe_key, job.run_at
        )

    # ------------------------------------------------------------ producers

    @initialize()
    def start_with_a_few_jobs(self) -> None:
        for job in self.queue.enqueue_many(["seed-1", "seed-2"]):
            self.add(job, None)

    @rule(
        priority=st.integers(0, 2),
        max_attempts=st.integers(1, 3),
        key=st.sampled_from([None, None, "k1", "k2"]),
    )
    def enqueue(self, priority: int, max_attempts: int, key: str | None) -> None:
        job = self.queue.enqueue(
            "payload", priority=priority, max_attempts=max_attempts, dedupe_key=key
        )
        self.add(job, key)

    @rule(
        specs=st.lists(
            st.tuples(st.integers(0, 2), st.sampled_from([None, None, "k1", "k3"])),
            min_size=1,
            max_size=4,
        )
    )
    def enqueue_many(self, specs: list[tuple[int, str | None]]) -> None:
        requests = [
            EnqueueRequest(f"b{i}", priority=p, dedupe_key=k) for i, (p, k) in enumerate(specs)
        ]
        for job, (_, key) in zip(self.queue.enqueue_many(requests), specs, strict=True):
            self.add(job, key)

    # ------------------------------------------------------------ consumers

    @rule(limit=st.integers(1, 3), consumer=st.sampled_from(["c1", "c2"]))
    def claim(self, limit: int, consumer: str) -> None:
        expected = [j.id for j in self.runnable()[:limit]]
        claimed = self.queue.claim(consumer, limit=limit, lease_seconds=LEASE)
        assert [j.id for j in claimed] == expected
        for job in claimed:
            model = self.jobs[job.id]
            model.status, model.attempts = R, model.attempts + 1
            model.started_at = self.clock.now
            model.token, model.lease_expires_at = job.lease_token, self.clock.now + LEASE
            assert job.attempts == model.attempts and job.consumer_id == consumer

    @precondition(lambda self: self.held())
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self.held()))
        assert job.token is not None
        expiry = self.queue.heartbeat(job.id, job.token, lease_seconds=LEASE)
        assert expiry == self.clock.now + LEASE
        job.lease_expires_at = expiry

    @precondition(lambda self: self.held())
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self.held()))
        assert job.token is not None
        assert self.queue.complete(job.id, job.token).status is D
        self.drop_lease(job)
        job.status, job.finished_at = D, self.clock.now

    @precondition(lambda self: self.held())
    @rule(data=st.data(), retryable=st.booleans())
    def fail(self, data: st.DataObject, retryable: bool) -> None:
        job = data.draw(st.sampled_from(self.held()))
        assert job.token is not None
        result = self.queue.fail(job.id, job.token, "boom", retryable=retryable)
        self.drop_lease(job)
        if retryable and job.attempts < job.max_attempts:
            job.status = F
            assert self.clock.now < result.run_at <= self.clock.now + 20.0
            job.run_at = result.run_at
        else:
            job.status = X
        assert result.status is job.status

    @precondition(lambda self: self.held())
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(self.held()))
        assert job.token is not None
        result = self.queue.release(job.id, job.token)
        self.drop_lease(job)
        job.status, job.attempts, job.run_at = P, job.attempts - 1, self.clock.now
        assert result.attempts == job.attempts

    @precondition(lambda self: self.stale_tokens)
    @rule(data=st.data(), kind=st.sampled_from(["complete", "fail", "release", "heartbeat"]))
    def zombie_reports_with_a_stale_token(self, data: st.DataObject, kind: str) -> None:
        job_id, stale = data.draw(st.sampled_from(self.stale_tokens))
        with pytest.raises(LeaseLost):
            if kind == "complete":
                self.queue.complete(job_id, stale)
            elif kind == "fail":
                self.queue.fail(job_id, stale, "zombie")
            elif kind == "release":
                self.queue.release(job_id, stale)
            else:
                self.queue.heartbeat(job_id, stale)

    # ------------------------------------------------------------ time and the manager

    @rule(seconds=st.sampled_from([0.5, 5.0, 15.0, 31.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def rescue_expired(self) -> None:
        now = self.clock.now
        expired = {
            j.id for j in self.held() if j.lease_expires_at is not None and j.lease_expires_at < now
        }
        self.apply_rescue(expired, self.queue.rescue_expired())

    @rule(stall_timeout=st.sampled_from([10.0, 40.0]))
    def rescue_stalled(self, stall_timeout: float) -> None:
        before = self.clock.now - stall_timeout
        stalled = {j.id for j in self.held() if j.started_at is not None and j.started_at < before}
        self.apply_rescue(stalled, self.queue.rescue_stalled(stall_timeout))

    def apply_rescue(self, expected: set[int], moved: list[Job]) -> None:
        now = self.clock.now
        assert {j.id for j in moved} == expected
        for job in moved:
            model = self.jobs[job.id]
            self.drop_lease(model)
            model.status = X if model.attempts >= model.max_attempts else P
            model.run_at = now
            assert job.status is model.status

    @rule(older_than=st.sampled_from([0.0, 20.0]))
    def purge_done(self, older_than: float) -> None:
        cutoff = self.clock.now - older_than
        old = {j.id for j in self.jobs.values() if j.status is D and (j.finished_at or 0) < cutoff}
        assert self.queue.purge_done(older_than) == len(old)
        for job_id in old:
            del self.jobs[job_id]
        self.stale_tokens = [(i, t) for i, t in self.stale_tokens if i not in old]
        for job_id in old:
            with pytest.raises(JobNotFound):
                self.queue.get(job_id)

    @precondition(lambda self: self.held() or self.stale_tokens)
    @rule(data=st.data(), limit=st.integers(0, 3))
    def settle_and_claim(self, data: st.DataObject, limit: int) -> None:
        held = self.held()
        chosen = (
            data.draw(st.lists(st.sampled_from(held), unique_by=lambda j: j.id)) if held else []
        )
        kinds = [data.draw(st.sampled_from(["done", "failed", "release"])) for _ in chosen]
        outcomes = [
            Outcome(j.id, j.token or "", k, "err", False)
            for j, k in zip(chosen, kinds, strict=True)
        ]
        stale: list[int] = []
        if self.stale_tokens and data.draw(st.booleans()):
            job_id, token = data.draw(st.sampled_from(self.stale_tokens))
            outcomes.insert(0, Outcome(job_id, token, "done"))
            stale.append(job_id)
        result = self.queue.settle_and_claim(outcomes, "c3", limit=limit, lease_seconds=LEASE)
        assert result.lost == stale
        assert [j.id for j in result.settled] == [j.id for j in chosen]
        for job, kind, settled in zip(chosen, kinds, result.settled, strict=True):
            self.drop_lease(job)
            if kind == "done":
                job.status, job.finished_at = D, self.clock.now
            elif kind == "failed":  # not retryable: the dead-letter queue
                job.status = X
            else:
                job.status, job.attempts, job.run_at = P, job.attempts - 1, self.clock.now
            assert settled.status is job.status
        expected = [j.id for j in self.runnable()[:limit]]
        assert [j.id for j in result.claimed] == expected
        for claimed in result.claimed:
            model = self.jobs[claimed.id]
            model.status, model.attempts = R, model.attempts + 1
            model.token, model.lease_expires_at = claimed.lease_token, self.clock.now + LEASE
            model.started_at = self.clock.now

    @rule()
    def schedule_retries(self) -> None:
        now = self.clock.now
        due = {j.id for j in self.jobs.values() if j.status is F and j.run_at <= now}
        moved = self.queue.schedule_retries()
        assert {j.id for j in moved} == due
        for job in moved:
            model = self.jobs[job.id]
            model.status, model.run_at = P, now

    # ------------------------------------------------------------ operators

    @precondition(lambda self: self.jobs)
    @rule(data=st.data(), action=st.sampled_from(sorted(OPERATOR_RULES)))
    def operator(self, data: st.DataObject, action: str) -> None:
        job = data.draw(st.sampled_from(sorted(self.jobs.values(), key=lambda j: j.id)))
        sources, destination = OPERATOR_RULES[action]
        key_taken = (
            action == "resubmit"
            and job.dedupe_key is not None
            and any(
                other.dedupe_key == job.dedupe_key and other.status in ACTIVE and other is not job
                for other in self.jobs.values()
            )
        )
        method = getattr(self.queue, action)
        if job.status not in sources or key_taken:
            with pytest.raises(InvalidTransition):
                method(job.id, actor="operator")
            return
        result = method(job.id, actor="operator")
        if job.status is R:
            self.drop_lease(job)
        job.status = destination
        if destination is D:
            job.finished_at = self.clock.now
        if action == "resubmit":
            job.attempts, job.run_at = 0, self.clock.now
        assert result.status is destination

    @rule(paused=st.booleans())
    def pause_or_resume(self, paused: bool) -> None:
        known = bool(self.jobs) or self.paused or self.concurrency is not None
        if not known:  # every job purged and nothing set: an unknown queue
            with pytest.raises(InvalidArgument):
                self.queue.pause("default", actor="operator")
            return
        if paused:
            assert self.queue.pause("default", actor="operator").paused
        else:
            self.queue.resume("default", actor="operator")
        self.paused = paused

    @rule(limit=st.sampled_from([None, 0, 1, 2]))
    def set_concurrency_limit(self, limit: int | None) -> None:
        control = self.queue.set_limits("default", concurrency=limit, actor="operator")
        self.concurrency = limit
        assert (control is None) == (limit is None and not self.paused)

    # ------------------------------------------------------------ checks after every step

    @invariant()
    def queue_matches_model(self) -> None:
        actual = {j.id: j for j in self.queue.list_jobs(limit=1000).jobs}
        assert set(actual) == set(self.jobs)
        for job_id, model in self.jobs.items():
            job = actual[job_id]
            assert job.status is model.status, job_id
            assert job.attempts == model.attempts, job_id
            assert job.lease_token == model.token, job_id
            if model.status is R:
                assert job.lease_expires_at == model.lease_expires_at
        tokens = [j.lease_token for j in actual.values() if j.lease_token is not None]
        assert len(tokens) == len(set(tokens)), "a lease token is held twice"

    @invariant()
    def stats_match_model(self) -> None:
        stats = self.queue.stats()
        expected = {state.value: 0 for state in JobState}
        for job in self.jobs.values():
            expected[job.status.value] += 1
        assert stats.counts == expected
        assert stats.total == len(self.jobs)
        assert stats.dead_letter == expected[X.value]
        now = self.clock.now
        stalled = sum(1 for j in self.held() if j.lease_expires_at and j.lease_expires_at < now)
        assert stats.stalled == stalled
        assert stats.paused_queues == (["default"] if self.paused else [])


# Each example gets fresh storage: cheap for a SQLite file, about half a second for a
# PostgreSQL database, so server backends run fewer examples to stay well under a minute.
EXAMPLES = {"sqlite": 60}
SERVER_EXAMPLES = 20


@pytest.mark.parametrize("backend_name", sorted(BACKENDS))
def test_queue_behaves_like_the_model(backend_name: str) -> None:
    machine = type(
        f"QueueModel_{backend_name}", (QueueModelMachine,), {"backend_name": backend_name}
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES.get(backend_name, SERVER_EXAMPLES),
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
            print_blob=True,
        ),
    )
