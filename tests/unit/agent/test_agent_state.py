"""The agent bridge's state table (media/agent/state.py)."""

from __future__ import annotations

import pytest

from media.agent.state import TRANSITIONS, BridgeState, InvalidTransition, check_transition

S = BridgeState


def test_every_state_has_a_row_and_only_stopped_is_final() -> None:
    assert set(TRANSITIONS) == set(BridgeState)
    assert [s for s, targets in TRANSITIONS.items() if not targets] == [S.STOPPED]


def test_stop_is_possible_from_every_state_and_leads_only_to_stopped() -> None:
    assert all(S.STOPPING in TRANSITIONS[s] for s in BridgeState if s not in (S.STOPPING, S.STOPPED))
    assert TRANSITIONS[S.STOPPING] == {S.STOPPED}


def test_every_state_is_reachable_from_new() -> None:
    seen, todo = {S.NEW}, [S.NEW]
    while todo:
        for nxt in TRANSITIONS[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    assert seen == set(BridgeState)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.NEW, S.STREAMING),  # start goes out on an open connection only
        (S.LOST, S.RECONNECTING),  # a lost agent is never tried again
        (S.LOST, S.CONNECTED),
        (S.UNAVAILABLE, S.CONNECTING),  # nor one that could not be reached at all
        (S.ENDED, S.RECONNECTING),  # an agent that hung up and closed is done
        (S.RECONNECTING, S.STREAMING),  # through CONNECTED, which sends start
        (S.STOPPING, S.LOST),  # nothing overtakes stop()
        (S.STOPPED, S.STOPPING),
    ],
)
def test_transitions_outside_the_table_are_refused(old: BridgeState, new: BridgeState) -> None:
    with pytest.raises(InvalidTransition, match=f"from {old.value} to {new.value}") as info:
        check_transition(old, new)
    assert (info.value.old, info.value.new) == (old, new)


def test_the_usual_life_is_allowed() -> None:
    life = [S.NEW, S.CONNECTING, S.CONNECTED, S.STREAMING, S.RECONNECTING, S.CONNECTED, S.STREAMING, S.STOPPING]
    for old, new in zip(life, [*life[1:], S.STOPPED], strict=True):
        check_transition(old, new)


def test_states_read_as_the_strings_they_always_were() -> None:
    assert S.STOPPED == "stopped" and S.LOST == "lost" and S.UNAVAILABLE == "unavailable" and S.ENDED == "ended"
    assert f"{S.STREAMING}" == "streaming"
