from __future__ import annotations

from gateway.outcome import EVENT_TYPE, TERMINAL, TRANSITIONS, CallStatus, sources_of


def test_statuses_are_the_seeds() -> None:
    assert [s.value for s in CallStatus] == [
        "initiating", "ringing", "in_progress", "completed", "failed", "busy", "no_answer", "cancelled"]


def test_terminal_states_have_no_exit() -> None:
    for s in TERMINAL:
        assert TRANSITIONS[s] == frozenset()
    assert {s for s in CallStatus if not TRANSITIONS[s]} == TERMINAL


def test_nothing_returns_to_initiating_and_answer_is_not_undone() -> None:
    assert sources_of(CallStatus.INITIATING) == frozenset()
    assert CallStatus.RINGING not in TRANSITIONS[CallStatus.IN_PROGRESS]
    assert CallStatus.CANCELLED not in TRANSITIONS[CallStatus.IN_PROGRESS]
    assert sources_of(CallStatus.COMPLETED) == {CallStatus.IN_PROGRESS}


def test_every_status_has_an_event() -> None:
    assert set(EVENT_TYPE) == set(CallStatus)
    assert {EVENT_TYPE[s] for s in TERMINAL - {CallStatus.COMPLETED}} == {"call.failed"}
