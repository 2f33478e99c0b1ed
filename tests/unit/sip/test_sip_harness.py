"""The far-end simulator itself (tests.support.sip_harness)."""

from __future__ import annotations

from tests.support.sip_harness import Harness


def test_harness_places_and_answers() -> None:
    h = Harness()
    step = h.answered_call()
    assert step.kinds() == ["Trying", "Ringing", "Answered"]
    assert len(step.requests("INVITE")) == 1 and len(step.requests("ACK")) == 1


def test_harness_clock_fires_deadlines_in_order() -> None:
    h = Harness()
    h.place()
    step = h.advance(2.0)
    # Timer A on UDP: retransmissions at 0.5 and 1.5 s
    assert len(step.requests("INVITE")) == 2
    assert h.now == 2.0
