"""Session timers (RFC 4028): the SessionTimer state, and what a call does with it (gateway.sip.session_timer)."""

from __future__ import annotations

import pytest

from gateway.outcome import CallStatus, HangupCause, HangupSide
from gateway.sip.errors import SipHeaderError
from gateway.sip.message import SipRequest, SipResponse, make_request, make_response
from gateway.sip.session_timer import (
    DIALOG_GONE,
    Agreement,
    SessionTimer,
    min_se,
    option_tags,
    session_expires,
)
from gateway.sip.useragent import CallOutcome, MediaUpdated
from tests.support.sip_harness import FAR, T1, Harness, answer_sdp, ended, sdp_request

# --------------------------------------------------------------------------- through a call


def test_session_timer_disabled_leaves_headers_out(h: Harness) -> None:
    invite = h.place(session_expires=0).one("INVITE")
    assert invite.header("Session-Expires") is None and invite.header("Min-SE") is None
    assert invite.header("Supported") == "timer"


@pytest.mark.parametrize("session_expires", ["120;refresher=uac", "120"])
def test_we_refresh_at_half_the_interval(h: Harness, session_expires: str) -> None:
    h.answered_call(headers=[("Session-Expires", session_expires)])
    assert h.invite is not None
    assert h.advance(59.9).requests("INVITE") == []
    refresh_sent = h.advance(0.1).sent_to("INVITE")
    refresh = refresh_sent.request
    assert refresh_sent.destination == FAR
    assert refresh.cseq == (2, "INVITE") and refresh.to_tag == "callee1"
    assert refresh.header("Session-Expires") == "120;refresher=uac" and refresh.header("Supported") == "timer"
    assert refresh.body == h.invite.body  # same SDP, same o= version
    assert refresh.header("Contact") is not None
    ok = h.respond(200, request=refresh, sdp=answer_sdp(), headers=[("Session-Expires", "120;refresher=uac")])
    step = h.feed(ok)
    assert step.one("ACK").cseq == (2, "ACK") and step.events == []  # same media: no MediaUpdated
    assert h.feed(ok).one("ACK").cseq == (2, "ACK")  # retransmitted 2xx: ACK again
    assert h.advance(59.9).requests("INVITE") == []
    assert h.advance(0.1).one("INVITE").cseq == (3, "INVITE")


def test_no_refresh_from_them_expires_the_session(h: Harness) -> None:
    h.answered_call(headers=[("Session-Expires", "120;refresher=uas")])
    # BYE at interval - min(32, interval/3) = 88 s
    assert h.advance(87.9).sent == []
    bye = h.advance(0.1).one("BYE")
    step = h.feed(h.respond(200, request=bye))
    assert ended(step) == CallOutcome(CallStatus.COMPLETED, HangupCause.SESSION_EXPIRED, HangupSide.LOCAL, None, None
    )


def test_refresh_from_them_resets_the_expiry(h: Harness) -> None:
    h.answered_call(headers=[("Session-Expires", "120;refresher=uas")])
    h.advance(50)
    request = h.request(
        "UPDATE", 1, headers=[("Session-Expires", "120;refresher=uac"), ("Supported", "timer")]
    )
    [ok] = h.feed(request, source=FAR).responses()
    assert ok.header("Session-Expires") == "120;refresher=uac" and ok.header("Require") == "timer"
    assert h.advance(87.9).sent == []  # 50 + 87.9 < 138
    assert h.advance(0.1).one("BYE").cseq.method == "BYE"


def test_their_reinvite_can_make_us_the_refresher(h: Harness) -> None:
    h.answered_call(headers=[("Session-Expires", "120;refresher=uas")])
    request = h.request(
        "INVITE",
        1,
        body=answer_sdp(),
        content_type="application/sdp",
        headers=[("Session-Expires", "200;refresher=uas")],
    )
    [ok] = h.feed(request, source=FAR).responses()
    assert ok.header("Session-Expires") == "200;refresher=uas" and ok.header("Require") is None
    h.feed(h.request("ACK", 1), source=FAR)
    assert h.advance(100).one("INVITE").header("Session-Expires") == "200;refresher=uac"


def test_their_too_short_session_gets_422(h: Harness) -> None:
    h.answered_call()
    request = h.request("UPDATE", 1, headers=[("Session-Expires", "30")])
    [resp] = h.feed(request, source=FAR).responses()
    assert resp.status == 422 and resp.header("Min-SE") == "90"


def test_malformed_session_expires_gets_400(h: Harness) -> None:
    h.answered_call()
    [resp] = h.feed(h.request("UPDATE", 1, headers=[("Session-Expires", "soon")]), source=FAR).responses()
    assert resp.status == 400


def test_2xx_without_session_expires_means_no_session_timer(h: Harness) -> None:
    h.answered_call()
    step = h.advance(4 * 3600)
    assert step.sent == [] and step.events == []
    assert h.ua.next_deadline() is None


@pytest.mark.parametrize("status", [481, 408])
def test_refresh_answered_481_or_408_means_the_dialog_is_gone(h: Harness, status: int) -> None:
    h.answered_call(headers=[("Session-Expires", "120;refresher=uac")])
    refresh = h.advance(60).one("INVITE")
    step = h.feed(h.respond(status, request=refresh))
    assert step.requests("BYE") == []
    outcome = ended(step)
    assert (outcome.status, outcome.cause, outcome.side, outcome.sip_status) == (
        "completed",
        HangupCause.REMOTE_HANGUP,
        HangupSide.REMOTE,
        status,
    )


def test_refresh_that_times_out_ends_the_call(h: Harness) -> None:
    h.answered_call(headers=[("Session-Expires", "1800;refresher=uac")])
    h.advance(900)
    step = h.advance(64 * T1)
    assert ended(step) == CallOutcome(CallStatus.COMPLETED, HangupCause.REMOTE_HANGUP, HangupSide.REMOTE, 408, "Request Timeout"
    )
    assert step.requests("BYE") == []


def test_expiry_while_our_refresh_is_unanswered_sends_bye(h: Harness) -> None:
    h.answered_call(headers=[("Session-Expires", "120;refresher=uac")])
    h.advance(60)  # refresh sent, never answered
    step = h.advance(28)  # expiry at 88 s comes before the refresh's Timer B (92 s)
    bye = step.one("BYE")
    step = h.feed(h.respond(200, request=bye))
    assert ended(step).cause is HangupCause.SESSION_EXPIRED


def test_other_refresh_failures_keep_the_call(h: Harness) -> None:
    h.answered_call(headers=[("Session-Expires", "120;refresher=uac")])
    refresh = h.advance(60).one("INVITE")
    step = h.feed(h.respond(500, request=refresh))
    assert step.one("ACK").cseq == (2, "ACK") and step.events == []
    # the far end answered, so it is alive: the timer restarts, no BYE at the old expiry
    step = h.advance(59.9)
    assert step.requests("BYE") == [] and step.events == []
    assert h.advance(0.1).one("INVITE").cseq == (3, "INVITE")


def test_refresh_answer_with_new_media_is_reported(h: Harness) -> None:
    h.answered_call(headers=[("Session-Expires", "120;refresher=uac")])
    refresh = h.advance(60).one("INVITE")
    ok = h.respond(200, request=refresh, sdp=answer_sdp(port=47000), headers=[("Session-Expires", "120")])
    step = h.feed(ok)
    [updated] = step.events
    assert isinstance(updated, MediaUpdated) and updated.media.remote_port == 47000


def test_their_reinvite_counts_as_a_refresh(h: Harness) -> None:
    h.answered_call(headers=[("Session-Expires", "120;refresher=uac")])
    h.advance(59)
    sdp_request(h, "INVITE", 1)
    h.feed(h.request("ACK", 1), source=FAR)
    # the session was refreshed at 59 s: our next refresh is due at 59 + 60 s
    assert h.advance(59.9).requests("INVITE") == []
    assert h.advance(0.1).one("INVITE").cseq == (2, "INVITE")


def test_refresh_stuck_after_a_provisional_is_cancelled(h: Harness) -> None:
    h.answered_call(headers=[("Session-Expires", "1800;refresher=uac")])
    refresh = h.advance(900).one("INVITE")
    h.feed(h.respond(100, request=refresh))
    cancel_sent = h.advance(64 * T1).sent_to("CANCEL")
    assert cancel_sent.destination == FAR and cancel_sent.request.cseq == (refresh.cseq.number, "CANCEL")
    assert cancel_sent.request.header("Via") == refresh.header("Via")
    step = h.feed(h.respond(487, request=refresh))
    assert step.one("ACK").cseq.method == "ACK" and step.events == []  # the far end is alive: call kept
    assert h.advance(899.9).requests("INVITE") == []
    assert h.advance(0.1).one("INVITE").cseq.method == "INVITE"


def test_stuck_refresh_does_not_keep_an_ended_call(h: Harness) -> None:
    h.answered_call(headers=[("Session-Expires", "1800;refresher=uac")])
    refresh = h.advance(900).one("INVITE")
    h.feed(h.respond(180, request=refresh))
    step = h.feed(h.request("BYE", 1), source=FAR)
    assert ended(step).cause is HangupCause.REMOTE_HANGUP
    step = h.advance(64 * T1 + 1)
    assert step.kinds() == ["Released"] and step.requests("CANCEL") == []


# --------------------------------------------------------------------------- SessionTimer itself


def _request(*headers: tuple[str, str]) -> SipRequest:
    return make_request(
        "UPDATE",
        "sip:gw@198.51.100.7:5060",
        from_="<sip:+14155552671@carrier.example.com>;tag=callee1",
        to="<sip:+12025551234@198.51.100.7>;tag=gw1",
        call_id="c1@198.51.100.7",
        cseq=5,
        via="SIP/2.0/UDP 203.0.113.50:5070;branch=z9hG4bK-st-1",
        headers=headers,
    )


def _response(status: int, *headers: tuple[str, str]) -> SipResponse:
    return make_response(_request(), status, headers=list(headers))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("1800", (1800, None)),
        ("1800;refresher=UAS", (1800, "uas")),
        (" 90 ; refresher=uac", (90, "uac")),
    ],
)
def test_session_expires_is_read(value: str | None, expected: tuple[int, str | None] | None) -> None:
    headers = [("Session-Expires", value)] if value is not None else []
    assert session_expires(_request(*headers)) == expected


@pytest.mark.parametrize("value", ["0", "soon", "-5", "12345678901", "١٢٠"])
def test_malformed_session_expires_raises(value: str) -> None:
    with pytest.raises(SipHeaderError) as info:
        session_expires(_request(("Session-Expires", value)))
    assert info.value.header == "Session-Expires" and info.value.status == 400


@pytest.mark.parametrize(("value", "expected"), [("600", 600), ("0", None), ("x", None), (None, None)])
def test_min_se_is_read_leniently(value: str | None, expected: int | None) -> None:
    headers = [("Min-SE", value)] if value is not None else []
    assert min_se(_response(422, *headers)) == expected


def test_option_tags_span_every_header_of_that_name() -> None:
    request = _request(("Supported", "Timer, 100rel"), ("Supported", "path"), ("Require", "timer"))
    assert option_tags(request, "Supported") == {"timer", "100rel", "path"}
    assert option_tags(request, "Require") == {"timer"}
    assert option_tags(request, "Proxy-Require") == set()


@pytest.mark.parametrize(
    ("session_expires_", "min_se_", "headers"),
    [
        (1800, 90, [("Session-Expires", "1800;refresher=uac"), ("Min-SE", "90")]),
        (60, 90, [("Session-Expires", "90;refresher=uac"), ("Min-SE", "90")]),  # never below our Min-SE
        (0, 90, []),
    ],
)
def test_invite_headers(session_expires_: int, min_se_: int, headers: list[tuple[str, str]]) -> None:
    assert SessionTimer(session_expires_, min_se_).invite_headers() == headers


def test_a_422_lengthens_the_invite_then_the_refresh() -> None:
    timer = SessionTimer(90, 90)
    assert not timer.interval_too_small(_response(422))  # no Min-SE: nothing to retry with
    assert timer.interval_too_small(_response(422, ("Min-SE", "600")))
    assert timer.min_se == 600
    assert timer.invite_headers() == [("Session-Expires", "600;refresher=uac"), ("Min-SE", "600")]
    timer.on_answer(_response(200, ("Session-Expires", "600;refresher=uac")))
    assert timer.interval_too_small(_response(422, ("Min-SE", "900")))
    assert timer.agreed == Agreement(900, True)
    assert timer.refresh_headers() == [("Session-Expires", "900;refresher=uac"), ("Min-SE", "900")]


@pytest.mark.parametrize(
    ("header", "agreed"),
    [
        ("120;refresher=uac", Agreement(120, True)),
        ("120", Agreement(120, True)),
        ("120;refresher=uas", Agreement(120, False)),
        ("never", None),
        (None, None),
    ],
)
def test_the_2xx_says_what_was_agreed(header: str | None, agreed: Agreement | None) -> None:
    timer = SessionTimer(1800, 90)
    timer.agreed = Agreement(1800, True)
    timer.on_answer(_response(200, *([("Session-Expires", header)] if header is not None else [])))
    assert timer.agreed == agreed


def test_refresh_headers_never_ask_for_more_than_the_interval() -> None:
    timer = SessionTimer(1800, 600)
    timer.on_answer(_response(200, ("Session-Expires", "300")))
    assert timer.refresh_headers() == [("Session-Expires", "300;refresher=uac"), ("Min-SE", "300")]


def test_their_refresh_decides_who_refreshes() -> None:
    timer = SessionTimer(1800, 90)
    assert timer.on_peer_refresh(_request(), None) == [] and timer.agreed is None
    request = _request(("Session-Expires", "200;refresher=uas"), ("Supported", "timer"))
    headers = timer.on_peer_refresh(request, (200, "uas"))
    assert headers == [("Session-Expires", "200;refresher=uas"), ("Require", "timer")]
    assert timer.agreed == Agreement(200, True)
    assert timer.on_peer_refresh(_request(), (300, None)) == [("Session-Expires", "300;refresher=uac")]
    assert timer.agreed == Agreement(300, False)


def test_deadlines() -> None:
    timer = SessionTimer(1800, 90)
    assert timer.deadlines(10.0) is None
    timer.agreed = Agreement(120, True)
    assert timer.deadlines(10.0) == (70.0, 98.0)  # half the interval; interval - 32
    timer.agreed = Agreement(90, False)
    assert timer.deadlines(10.0) == (None, 70.0)  # they refresh; interval - interval/3
    assert DIALOG_GONE == {481, 408}
