"""Placing a call (gateway.sip.outbound_call): the INVITE, its responses, BYE, CANCEL, forking and routing."""

from __future__ import annotations

import pytest

from gateway.outcome import HangupCause, HangupSide
from gateway.sip.call_state import CallPhase, CallPhaseError
from gateway.sip.message import SipRequest, SipResponse
from gateway.sip.outbound_call import OutboundCall
from gateway.sip.sdp import MediaDirection, SessionDescription
from gateway.sip.useragent import (
    Answered,
    CallOutcome,
    LocalMedia,
    Released,
    Ringing,
    Trying,
    UaUsageError,
)
from tests.support.sip_harness import (
    CREDENTIALS,
    FAR,
    FAR_IP,
    LOCAL_HOST,
    T1,
    TRUNK,
    Harness,
    answer_sdp,
    ended,
    released_after,
)

# --------------------------------------------------------------------------- the INVITE


def test_invite_is_built_from_params(h: Harness) -> None:
    step = h.place(
        extra_headers=(("X-Orbit-Call", "call_1"), ("P-Asserted-Identity", "<sip:+12025551234@x>"))
    )
    assert isinstance(step.events[0], Trying)
    sent = step.sent_to("INVITE")
    assert sent.destination == TRUNK and sent.transport == "udp"
    invite = sent.request
    assert str(invite.uri) == "sip:+14155552671@carrier.example.com:5060;transport=udp"
    assert step.events[0] == Trying(invite.call_id)
    assert invite.call_id.endswith("@" + LOCAL_HOST) and len(invite.call_id.split("@")[0]) == 24
    assert str(invite.from_.uri) == f"sip:+12025551234@{LOCAL_HOST}" and len(invite.from_tag or "") == 16
    assert invite.header("To") == "<sip:+14155552671@carrier.example.com>" and invite.to_tag is None
    assert tuple(invite.cseq) == (1, "INVITE")
    via = invite.via
    assert (via.transport, via.host, via.port) == ("UDP", LOCAL_HOST, 5060)
    assert (via.branch or "").startswith("z9hG4bK") and via.has_rport
    assert invite.max_forwards == 70
    assert invite.header("Contact") == f"<sip:gw@{LOCAL_HOST}:5060;transport=udp>"
    assert invite.header("User-Agent") == "orbit-test"
    assert invite.headers.get_all("Allow") == ["INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE"]
    assert invite.header("Supported") == "timer"
    assert invite.header("Session-Expires") == "1800;refresher=uac"
    assert invite.header("Min-SE") == "90"
    assert invite.header("X-Orbit-Call") == "call_1"
    assert invite.header("P-Asserted-Identity") == "<sip:+12025551234@x>"
    assert invite.content_type == "application/sdp"
    offer = SessionDescription.parse(invite.body)
    audio = offer.audio()
    assert audio is not None and audio.port == 20000 and audio.formats == ["0", "8", "101"]
    assert offer.origin.address == LOCAL_HOST and audio.ptime == 20


def test_tcp_invite_uses_tcp_and_is_not_retransmitted(h: Harness) -> None:
    step = h.place(transport="tcp")
    sent = step.sent_to("INVITE")
    assert sent.transport == "tcp" and sent.request.via.transport == "TCP"
    assert sent.request.header("Contact") == f"<sip:gw@{LOCAL_HOST}:5060;transport=tcp>"
    assert h.advance(10).requests("INVITE") == []


def test_udp_invite_is_retransmitted_until_a_provisional(h: Harness) -> None:
    h.place()
    assert len(h.advance(1.6).requests("INVITE")) == 2  # T1, then 2*T1 later
    assert h.feed(h.respond(100)).sent == []  # 100: nothing but stops retransmissions
    assert h.advance(10).requests("INVITE") == []


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"transport": "tcp"}, "not enabled"),
        ({"extra_headers": (("Call-ID", "x"),)}, "written by the user agent"),
        ({"extra_headers": (("Bad Name", "x"),)}, "invalid extra header"),
        (
            {"local_media": LocalMedia(address=LOCAL_HOST, rtp_port=20000, codecs=("OPUS",))},
            "cannot be offered",
        ),
    ],
)
def test_place_call_refuses_what_it_cannot_do(overrides: dict[str, object], problem: str) -> None:
    h = Harness(tcp_port=None)
    with pytest.raises(UaUsageError, match=problem):
        h.place(**overrides)
    assert h.ua.pop_outputs() == [] and h.ua.active_calls() == 0


def test_call_ref_in_use_is_refused(h: Harness) -> None:
    h.place()
    with pytest.raises(UaUsageError, match="in use"):
        h.place()


# --------------------------------------------------------------------------- provisional, answer


def test_ringing_and_early_media(h: Harness) -> None:
    h.place()
    step = h.feed(h.respond(180))
    assert step.events == [Ringing(180, "Ringing", None)] and step.sent == []
    assert h.feed(h.respond(180)).events == []  # same 180 again: no new event
    step = h.feed(h.respond(183, sdp=answer_sdp(port=41000)))
    [ringing] = step.events
    assert isinstance(ringing, Ringing) and ringing.status == 183 and ringing.reason == "Session Progress"
    assert ringing.early_media is not None
    assert (ringing.early_media.remote_address, ringing.early_media.remote_port) == (FAR_IP, 41000)
    assert ringing.early_media.codec == "PCMU"


def test_answer_sends_ack_to_contact_and_reports_media(h: Harness) -> None:
    h.place()
    h.feed(h.respond(180))
    step = h.answer(sdp=answer_sdp(formats="8 101"))
    ack_sent = step.sent_to("ACK")
    ack = ack_sent.request
    assert ack_sent.destination == FAR and ack_sent.transport == "udp"
    assert str(ack.uri) == f"sip:callee@{FAR_IP}:5070"
    assert ack.cseq == (1, "ACK") and ack.to_tag == "callee1" and ack.route == []
    assert h.invite is not None
    assert ack.via.branch != h.invite.via.branch and ack.call_id == h.invite.call_id
    assert ack.from_tag == h.invite.from_tag
    [answered] = step.events
    assert isinstance(answered, Answered) and answered.status == 200
    assert answered.media.codec == "PCMA" and answered.media.remote_port == 40000
    assert answered.media.direction is MediaDirection.SENDRECV
    assert h.ua.active_calls() == 1


def test_retransmitted_2xx_gets_the_same_ack(h: Harness) -> None:
    h.place()
    first = h.answer()
    again = h.answer()
    assert again.events == []
    assert bytes(again.one("ACK")) == bytes(first.one("ACK"))


def test_2xx_without_sdp_uses_the_early_answer(h: Harness) -> None:
    h.place()
    h.feed(h.respond(183, sdp=answer_sdp(port=42000)))
    step = h.feed(h.respond(200))
    [answered] = step.events
    assert isinstance(answered, Answered) and answered.media.remote_port == 42000


@pytest.mark.parametrize("sdp", [None, answer_sdp(formats="18"), answer_sdp(port=0), b"not sdp at all"])
def test_2xx_without_usable_media_is_acked_then_byed(h: Harness, sdp: bytes | None) -> None:
    h.place()
    response = h.respond(200, sdp=sdp)
    if sdp is not None:
        response.headers.set("Content-Type", "application/sdp")
    step = h.feed(response)
    assert [r.method for r in step.requests()] == ["ACK", "BYE"]
    assert step.sent_to("BYE").destination == FAR
    assert step.events == []  # Ended comes with the BYE's completion
    bye = step.one("BYE")
    step = h.feed(h.respond(200, request=bye))
    assert ended(step) == CallOutcome(
        "failed", HangupCause.CODEC_MISMATCH, HangupSide.LOCAL, 488, "Not Acceptable Here"
    )


def test_local_bye_reports_end_when_it_completes(h: Harness) -> None:
    h.answered_call()
    step = h.hangup(HangupCause.AGENT_HANGUP)
    bye_sent = step.sent_to("BYE")
    bye = bye_sent.request
    assert bye_sent.destination == FAR
    assert bye.cseq == (2, "BYE") and str(bye.uri) == f"sip:callee@{FAR_IP}:5070"
    assert bye.to_tag == "callee1" and step.events == []
    assert h.hangup(HangupCause.API_HANGUP).sent == []  # idempotent
    step = h.feed(h.respond(200, request=bye))
    assert ended(step) == CallOutcome("completed", HangupCause.AGENT_HANGUP, HangupSide.LOCAL, None, None)
    released_after(h)


def test_local_bye_that_times_out_still_ends_the_call(h: Harness) -> None:
    h.answered_call()
    h.hangup(HangupCause.API_HANGUP)
    step = h.advance(64 * T1)
    assert len(step.requests("BYE")) >= 5  # Timer E retransmissions
    assert ended(step).cause is HangupCause.API_HANGUP
    # Timer F and the INVITE's Timer M end together here: nothing lingers
    assert step.kinds()[-2:] == ["Ended", "Released"]


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("status", "result", "cause"),
    [
        (486, "busy", HangupCause.BUSY),
        (600, "busy", HangupCause.BUSY),
        (480, "no_answer", HangupCause.NO_ANSWER),
        (408, "no_answer", HangupCause.NO_ANSWER),
        (488, "failed", HangupCause.CODEC_MISMATCH),
        (606, "failed", HangupCause.CODEC_MISMATCH),
        (503, "failed", HangupCause.REJECTED),
        (404, "failed", HangupCause.REJECTED),
        (603, "failed", HangupCause.REJECTED),
        (302, "failed", HangupCause.REJECTED),
        (487, "failed", HangupCause.REJECTED),
        (401, "failed", HangupCause.AUTH_FAILED),  # no credentials configured
    ],
)
def test_final_failures_map_to_outcomes(h: Harness, status: int, result: str, cause: HangupCause) -> None:
    h.place()
    h.feed(h.respond(180))
    response = h.respond(
        status, reason="Carrier Says No", headers=[("WWW-Authenticate", 'Digest realm="r", nonce="n"')]
    )
    if status == 302:
        response.headers.add("Contact", "<sip:elsewhere@example.net>")
    step = h.feed(response)
    ack = step.one("ACK")  # the transaction ACKs non-2xx finals: same branch, To tag of the response
    assert h.invite is not None
    assert ack.via.branch == h.invite.via.branch and ack.to_tag == "callee1" and ack.cseq == (1, "ACK")
    assert step.sent_to("ACK").destination == TRUNK
    assert ended(step) == CallOutcome(result, cause, HangupSide.REMOTE, status, "Carrier Says No")  # type: ignore[arg-type]
    # a retransmitted final gets the ACK again from the transaction, and nothing else
    again = h.feed(response)
    assert [r.method for r in again.requests()] == ["ACK"] and again.events == []
    released_after(h)


def test_timer_b_fails_with_timeout(h: Harness) -> None:
    h.place()
    step = h.advance(64 * T1)
    assert len(step.requests("INVITE")) == 6  # Timer A at 0.5, 1.5, 3.5, 7.5, 15.5, 31.5
    assert ended(step) == CallOutcome(
        "failed", HangupCause.TIMEOUT, HangupSide.REMOTE, 408, "Request Timeout"
    )
    assert any(isinstance(e, Released) for e in step.events)
    assert h.ua.next_deadline() is None


def test_transport_error_fails_the_call(h: Harness) -> None:
    h.place(transport="tcp")
    h.ua.transport_error(("192.0.2.1", 5060), "tcp", h.now)  # another hop: no effect
    assert h.drain().events == []
    h.ua.transport_error(TRUNK, "tcp", h.now)
    step = h.drain()
    assert ended(step) == CallOutcome(
        "failed", HangupCause.TRANSPORT_ERROR, HangupSide.REMOTE, 503, "Service Unavailable"
    )
    assert step.kinds() == ["Ended", "Released"]


# --------------------------------------------------------------------------- CANCEL


def test_hangup_after_provisional_sends_cancel(h: Harness) -> None:
    h.place()
    h.feed(h.respond(180))
    step = h.hangup(HangupCause.API_HANGUP)
    cancel_sent = step.sent_to("CANCEL")
    cancel = cancel_sent.request
    invite = h.invite
    assert invite is not None and cancel_sent.destination == TRUNK
    assert cancel.uri == invite.uri and cancel.call_id == invite.call_id
    assert cancel.header("From") == invite.header("From") and cancel.header("To") == invite.header("To")
    assert cancel.cseq == (1, "CANCEL") and cancel.header("Via") == invite.header("Via")
    assert step.events == []
    assert h.hangup(HangupCause.API_HANGUP).sent == []  # idempotent
    assert h.feed(h.respond(200, request=cancel, to_tag=None)).events == []
    step = h.feed(h.respond(487))
    assert step.one("ACK").cseq == (1, "ACK")
    assert ended(step) == CallOutcome(
        "cancelled", HangupCause.API_HANGUP, HangupSide.LOCAL, 487, "Request Terminated"
    )
    released_after(h)


def test_hangup_before_provisional_waits_for_one(h: Harness) -> None:
    h.place()
    step = h.hangup(HangupCause.API_HANGUP)
    assert step.sent == [] and step.events == []
    step = h.feed(h.respond(100))
    assert step.one("CANCEL").cseq == (1, "CANCEL") and step.events == []
    step = h.feed(h.respond(487))
    assert ended(step).status == "cancelled"


def test_hangup_before_provisional_then_timer_b_keeps_cancelled(h: Harness) -> None:
    h.place()
    h.hangup(HangupCause.API_HANGUP)
    step = h.advance(64 * T1)
    assert step.requests("CANCEL") == []
    assert ended(step) == CallOutcome("cancelled", HangupCause.API_HANGUP, HangupSide.LOCAL, None, None)


def test_final_before_pending_cancel_decides(h: Harness) -> None:
    h.place()
    h.hangup(HangupCause.API_HANGUP)
    step = h.feed(h.respond(486))
    assert step.requests("CANCEL") == []
    assert ended(step).status == "busy"


def test_challenge_after_hangup_is_not_retried(h: Harness) -> None:
    h.place(credentials=CREDENTIALS)
    h.hangup(HangupCause.API_HANGUP)
    step = h.feed(h.respond(407, headers=[("Proxy-Authenticate", 'Digest realm="c", nonce="n"')]))
    assert step.requests("INVITE") == []
    assert ended(step).status == "cancelled"


def test_ring_timeout_cancels_as_no_answer(h: Harness) -> None:
    h.place(ring_timeout=30.0)
    h.feed(h.respond(180))
    step = h.advance(29.9)
    assert step.sent == []
    step = h.advance(0.1)
    cancel = step.one("CANCEL")
    step = h.feed(h.respond(487))
    assert ended(step) == CallOutcome(
        "no_answer", HangupCause.RING_TIMEOUT, HangupSide.LOCAL, 487, "Request Terminated"
    )
    assert cancel.cseq == (1, "CANCEL")


def test_200_racing_the_cancel_is_acked_and_byed(h: Harness) -> None:
    h.place(ring_timeout=20.0)
    h.feed(h.respond(180))
    h.advance(20.0)
    step = h.answer()
    assert [r.method for r in step.requests()] == ["ACK", "BYE"]
    assert step.events == []  # never Answered
    step = h.feed(h.respond(200, request=step.one("BYE")))
    assert ended(step) == CallOutcome("no_answer", HangupCause.RING_TIMEOUT, HangupSide.LOCAL, None, None)
    released_after(h)


def test_no_final_after_cancel_ends_the_call(h: Harness) -> None:
    h.place()
    h.feed(h.respond(180))
    cancel = h.hangup(HangupCause.API_HANGUP).one("CANCEL")
    h.feed(h.respond(200, request=cancel, to_tag=None))
    step = h.advance(64 * T1)
    assert ended(step) == CallOutcome("cancelled", HangupCause.API_HANGUP, HangupSide.LOCAL, None, None)
    released_after(h, prior=step)


# --------------------------------------------------------------------------- forking and routing


def test_forked_second_2xx_is_acked_and_byed(h: Harness) -> None:
    h.place()
    h.feed(h.respond(180, to_tag="a"))
    h.feed(h.respond(180, to_tag="b", contact="<sip:b@203.0.113.60>"))
    first = h.answer(to_tag="a")
    assert first.kinds() == ["Answered"]
    step = h.answer(to_tag="b", contact="<sip:b@203.0.113.60>")
    assert step.events == []
    ack, bye = step.requests()
    assert (ack.method, bye.method) == ("ACK", "BYE")
    assert ack.to_tag == bye.to_tag == "b" and bye.cseq == (2, "BYE")
    assert step.sent[1].destination == ("203.0.113.60", 5060)
    # each dialog's 2xx retransmission gets its own ACK again
    assert h.answer(to_tag="b", contact="<sip:b@203.0.113.60>").one("ACK").to_tag == "b"
    assert h.answer(to_tag="a").one("ACK").to_tag == "a"
    # the call stays on the first dialog
    bye_a = h.hangup(HangupCause.API_HANGUP).one("BYE")
    assert bye_a.to_tag == "a"


def test_record_route_gives_route_set_and_loose_routing(h: Harness) -> None:
    h.place()
    # the proxy nearest the callee is on top of Record-Route; the one nearest us at the bottom
    rr = ["<sip:callee-edge.example.com;lr>", "<sip:10.0.0.1:5080;lr;transport=tcp>"]
    step = h.answer(record_route=rr)
    ack_sent = step.sent_to("ACK")
    assert ack_sent.destination == ("10.0.0.1", 5080) and ack_sent.transport == "tcp"
    ack = ack_sent.request
    assert str(ack.uri) == f"sip:callee@{FAR_IP}:5070"
    assert [str(r) for r in ack.route] == [
        "<sip:10.0.0.1:5080;lr;transport=tcp>",
        "<sip:callee-edge.example.com;lr>",
    ]
    bye_sent = h.hangup(HangupCause.API_HANGUP).sent_to("BYE")
    assert bye_sent.destination == ("10.0.0.1", 5080)
    assert bye_sent.request.headers.get_all("Route") == ack.headers.get_all("Route")
    assert str(bye_sent.request.uri) == f"sip:callee@{FAR_IP}:5070"


def test_strict_router_gets_the_request_uri(h: Harness) -> None:
    h.place()
    step = h.answer(record_route=["<sip:strict.example.com:5090>"])
    ack_sent = step.sent_to("ACK")
    assert str(ack_sent.request.uri) == "sip:strict.example.com:5090"
    assert [str(r.uri) for r in ack_sent.request.route] == [f"sip:callee@{FAR_IP}:5070"]
    assert ack_sent.destination == ("strict.example.com", 5090)


def test_2xx_without_contact_falls_back_to_the_request_uri(h: Harness) -> None:
    h.place()
    ack_sent = h.answer(contact=None).sent_to("ACK")
    assert str(ack_sent.request.uri) == "sip:+14155552671@carrier.example.com:5060;transport=udp"
    assert ack_sent.destination == ("carrier.example.com", 5060)


def test_responses_to_the_invite_are_ignored_once_released(h: Harness) -> None:
    h.place()
    step = h.feed(h.respond(486))
    assert ended(step).status == "busy"
    released_after(h)
    late = h.feed(h.respond(200, sdp=answer_sdp()))
    assert late.sent == [] and late.events == []
    assert h.ua.stats.dropped_responses == 1


def test_response_types_round_trip(h: Harness) -> None:
    # sanity: the harness builds what the UA expects
    h.place()
    assert isinstance(h.respond(180), SipResponse) and isinstance(h.invite, SipRequest)


def test_early_dialogs_are_bounded(h: Harness) -> None:
    h.place()
    for n in range(40):
        h.feed(h.respond(180, to_tag=f"t{n}"))
    call = h.ua._calls["call_1"]
    assert len(call._early) == 16
    assert h.answer(to_tag="t39").kinds() == ["Answered"]  # a 2xx from any tag still confirms


# --------------------------------------------------------------------------- phases


def test_the_phase_follows_the_call(h: Harness) -> None:
    h.place()
    call = h.ua._calls["call_1"]
    assert isinstance(call, OutboundCall) and call.phase is CallPhase.CALLING
    h.feed(h.respond(180))
    assert call.phase is CallPhase.EARLY
    h.answer()
    assert call.phase is CallPhase.CONFIRMED
    bye = h.hangup(HangupCause.API_HANGUP).one("BYE")
    assert call.phase is CallPhase.CLOSING
    h.feed(h.respond(200, request=bye))
    assert call.phase is CallPhase.ENDED


def test_a_cancelled_call_goes_through_cancelling(h: Harness) -> None:
    h.place()
    call = h.ua._calls["call_1"]
    assert isinstance(call, OutboundCall)
    h.feed(h.respond(183))
    h.hangup(HangupCause.API_HANGUP)
    assert call.phase is CallPhase.CANCELLING
    h.feed(h.respond(487))
    assert call.phase is CallPhase.ENDED


def test_a_move_off_the_table_is_refused_and_contained(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h.answered_call()
    call = h.ua._calls["call_1"]
    assert isinstance(call, OutboundCall)
    with pytest.raises(CallPhaseError):
        call._enter(CallPhase.EARLY)
    assert call.phase is CallPhase.CONFIRMED
    # A bug that tries such a move is an internal error of that call, not an answer to the peer.
    monkeypatch.setattr(OutboundCall, "close", lambda self, outcome, now: self._enter(CallPhase.CALLING))
    assert h.hangup(HangupCause.API_HANGUP).sent == []
    assert h.ua.stats.internal_errors == 1
    h.ua.stats.internal_errors = 0  # expected here
