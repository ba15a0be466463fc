from __future__ import annotations

import pytest

from pqcore.exceptions import InvalidArgument
from pqcore.states import (
    ALLOWED_EDGES,
    FINAL_STATES,
    TRANSITIONS,
    JobState,
    Transition,
    can,
    parse_state,
)


def test_done_is_final_and_nothing_leaves_it() -> None:
    assert JobState.DONE in FINAL_STATES
    assert not any(can(t, JobState.DONE) for t in Transition if t in TRANSITIONS)


def test_only_operators_take_jobs_out_of_the_dead_letter_queue() -> None:
    dead = JobState.PERMANENTLY_FAILED
    leaving = {t for t, (sources, _) in TRANSITIONS.items() if dead in sources}
    assert leaving == {Transition.RESUBMIT, Transition.MARK_DONE}


def test_claim_only_from_pending() -> None:
    assert TRANSITIONS[Transition.CLAIM] == (frozenset({JobState.PENDING}), JobState.PROCESSING)


S = JobState

# Every edge of /work/shared/design/persistent-queue-design.md, from its diagrams. The
# design's STALLED is a condition in pq (a processing job whose lease expired), not a
# state, so its PROCESSING -> STALLED -> PENDING is the one edge PROCESSING -> PENDING.
DESIGN_EDGES = {
    (None, S.PENDING): "lifecycle: [*] --> PENDING, producer enqueues",
    (S.PENDING, S.PROCESSING): "lifecycle: PENDING --> PROCESSING, consumer dequeues",
    (S.PROCESSING, S.DONE): "lifecycle: PROCESSING --> done, successful processing",
    (S.PROCESSING, S.FAILED): "lifecycle: PROCESSING --> FAILED, error during processing",
    (S.PROCESSING, S.PENDING): "lifecycle: PROCESSING --> STALLED --> PENDING, manager resubmits",
    (S.FAILED, S.PENDING): "lifecycle: FAILED --> PENDING; retry flow: requeue (attempts left)",
    (S.PROCESSING, S.PERMANENTLY_FAILED): "retry flow: attempts >= max, permanently_failed",
    (S.PERMANENTLY_FAILED, S.PENDING): "dead letter queue: admin console resubmit to main queue",
}

# What pq allows beyond those diagrams, on purpose. The design names these operator
# actions ("mark jobs as done or failed", "resubmit or cancel jobs") without their states;
# a new edge must be added here with its reason, or the test below fails.
PQ_EXTRA_EDGES = {
    (S.FAILED, S.PERMANENTLY_FAILED): "a failed job found out of attempts when its backoff "
    "ends is dead-lettered by the manager (the retry flow's attempts >= max, decided late), "
    "and an operator's mark failed",
    (S.PENDING, S.CANCELLED): "operator cancel of a job that has not run",
    (S.FAILED, S.CANCELLED): "operator cancel of a job waiting for its retry",
    (S.PROCESSING, S.CANCELLED): "operator cancel of a running job (the design's future "
    "cancellation): the holder's lease goes, its outcome is refused",
    (S.CANCELLED, S.PENDING): "operator resubmit of a cancelled job",
    (S.PENDING, S.DONE): "operator mark done (design: manually mark jobs as done)",
    (S.FAILED, S.DONE): "operator mark done of a job waiting for its retry",
    (S.PERMANENTLY_FAILED, S.DONE): "operator mark done of a dead letter (handled by hand)",
    (S.PENDING, S.PERMANENTLY_FAILED): "operator mark failed (design: manually mark jobs as "
    "failed), straight to the dead-letter queue",
}


def test_the_allowed_edges_are_the_designs_plus_the_listed_extras() -> None:
    assert not DESIGN_EDGES.keys() & PQ_EXTRA_EDGES.keys()  # each edge listed once
    missing = DESIGN_EDGES.keys() - ALLOWED_EDGES
    assert not missing, f"design edges pq does not allow: {missing}"
    unlisted = ALLOWED_EDGES - DESIGN_EDGES.keys() - PQ_EXTRA_EDGES.keys()
    assert not unlisted, f"edges neither in the design nor listed with a reason: {unlisted}"
    stale = PQ_EXTRA_EDGES.keys() - ALLOWED_EDGES
    assert not stale, f"listed extras pq no longer allows: {stale}"
    assert set(ALLOWED_EDGES) == DESIGN_EDGES.keys() | PQ_EXTRA_EDGES.keys()


def test_no_edge_leaves_done_or_enters_processing_but_by_a_claim() -> None:
    assert not {edge for edge in ALLOWED_EDGES if edge[0] is S.DONE}
    assert {edge for edge in ALLOWED_EDGES if edge[1] is S.PROCESSING} == {
        (S.PENDING, S.PROCESSING)
    }


@pytest.mark.parametrize("text", ["pending", " DONE ", "Permanently_Failed"])
def test_parse_state_accepts_any_case(text: str) -> None:
    assert parse_state(text) in JobState


def test_parse_state_lists_valid_states() -> None:
    with pytest.raises(InvalidArgument, match="expected one of: pending, processing"):
        parse_state("finished")
