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


def test_every_edge_of_the_design_is_allowed() -> None:
    s = JobState
    design = {
        (None, s.PENDING),
        (s.PENDING, s.PROCESSING),
        (s.PROCESSING, s.DONE),
        (s.PROCESSING, s.FAILED),
        (s.PROCESSING, s.PERMANENTLY_FAILED),
        (s.PROCESSING, s.PENDING),
        (s.FAILED, s.PENDING),
        (s.PERMANENTLY_FAILED, s.PENDING),
        (s.CANCELLED, s.PENDING),
        (s.PENDING, s.CANCELLED),
        (s.FAILED, s.CANCELLED),
    }
    assert design <= ALLOWED_EDGES
    assert (s.DONE, s.PENDING) not in ALLOWED_EDGES


@pytest.mark.parametrize("text", ["pending", " DONE ", "Permanently_Failed"])
def test_parse_state_accepts_any_case(text: str) -> None:
    assert parse_state(text) in JobState


def test_parse_state_lists_valid_states() -> None:
    with pytest.raises(InvalidArgument, match="expected one of: pending, processing"):
        parse_state("finished")
