"""The phase table and timers of an outbound call (gateway.sip.call_state)."""

from __future__ import annotations

import itertools

import pytest

from gateway.sip.call_state import PHASE_TRANSITIONS, CallPhase, CallPhaseError, CallTimer, transition

P = CallPhase
MOVES = [(a, b) for a, targets in PHASE_TRANSITIONS.items() for b in targets]
NOT_MOVES = [(a, b) for a, b in itertools.product(CallPhase, CallPhase) if b not in PHASE_TRANSITIONS[a]]


@pytest.mark.parametrize(("current", "new"), MOVES, ids=[f"{a.name}->{b.name}" for a, b in MOVES])
def test_the_moves_of_the_table_are_allowed(current: CallPhase, new: CallPhase) -> None:
    assert transition(current, new) is new


@pytest.mark.parametrize(("current", "new"), NOT_MOVES, ids=[f"{a.name}->{b.name}" for a, b in NOT_MOVES])
def test_every_other_move_is_refused(current: CallPhase, new: CallPhase) -> None:
    with pytest.raises(CallPhaseError, match=f"from {current.name} to {new.name}"):
        transition(current, new)


def test_the_table_reads_as_documented() -> None:
    assert set(PHASE_TRANSITIONS) == set(CallPhase)
    assert PHASE_TRANSITIONS[P.ENDED] == frozenset()  # Ended is said once
    assert all(P.ENDED in PHASE_TRANSITIONS[p] for p in CallPhase if p is not P.ENDED)
    assert all(p not in PHASE_TRANSITIONS[p] for p in CallPhase)  # no move to itself
    assert P.CANCELLING in PHASE_TRANSITIONS[P.EARLY] and P.CANCELLING not in PHASE_TRANSITIONS[P.CALLING]
    assert P.CONFIRMED not in PHASE_TRANSITIONS[P.CANCELLING]  # a 2xx after our CANCEL is ended at once
    # Nothing goes back: no phase leads to CALLING, and only CALLING to EARLY.
    assert all(P.CALLING not in targets for targets in PHASE_TRANSITIONS.values())
    assert [p for p, targets in PHASE_TRANSITIONS.items() if P.EARLY in targets] == [P.CALLING]


def test_timers_have_distinct_names() -> None:
    # Timers due together fire in deadline order, then by name: the names must differ.
    assert len({t.value for t in CallTimer}) == len(CallTimer)
