"""The far end's requests within the dialog (gateway.sip.in_dialog): re-INVITE, UPDATE, OPTIONS, INFO, BYE, glare."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.outcome import CallStatus, HangupCause, HangupSide
from gateway.sip.message import make_cancel, make_request, new_branch
from gateway.sip.sdp import MediaDirection
from gateway.sip.useragent import CallOutcome, DtmfReceived, MediaUpdated
from tests.support.sip_errors import TYPED_ERROR_IDS, TYPED_ERRORS
from tests.support.sip_harness import (
    FAR,
    FAR_IP,
    T1,
    Harness,
    answer_sdp,
    ended,
    released_after,
    sdp_of,
    sdp_request,
)

# --------------------------------------------------------------------------- re-INVITE


def test_reinvite_hold_is_answered_recvonly(h: Harness) -> None:
    h.answered_call()
    assert h.invite is not None
    offer = sdp_of(h.invite.body)
    step, _ = sdp_request(h, "INVITE", 1, direction="sendonly", version=2)
    [ok] = step.responses()
    assert (
        ok.status == 200 and step.sent[0].destination == FAR
    )  # FAR is not a trusted trunk: in-dialog is enough
    assert ok.header("Contact") is not None and ok.content_type == "application/sdp"
    answer = sdp_of(ok.body)
    audio = answer.audio()
    assert audio is not None and audio.direction is MediaDirection.RECVONLY and audio.port == 20000
    assert answer.origin.session_id == offer.origin.session_id
    assert answer.origin.session_version == offer.origin.session_version + 1
    [updated] = step.events
    assert isinstance(updated, MediaUpdated)
    assert updated.media.direction is MediaDirection.RECVONLY and updated.media.remote_hold
    # resume: sendrecv again, version keeps increasing
    ack = h.request("ACK", 1)
    assert h.feed(ack, source=FAR).sent == []
    step, _ = sdp_request(h, "INVITE", 2, version=3)
    resumed = sdp_of(step.responses()[0].body)
    assert resumed.origin.session_version == offer.origin.session_version + 2
    [updated] = step.events
    assert isinstance(updated, MediaUpdated) and updated.media.direction is MediaDirection.SENDRECV


def test_reinvite_2xx_is_retransmitted_until_the_ack(h: Harness) -> None:
    h.answered_call()
    step, _ = sdp_request(h, "INVITE", 1)
    ok = step.responses()[0]
    for gap in (0.5, 1.0, 2.0, 4.0, 4.0):  # T1 doubling, capped at T2
        assert h.advance(gap - 0.01).sent == []
        again = h.advance(0.01).responses()
        assert len(again) == 1 and bytes(again[0]) == bytes(ok)
    assert h.feed(h.request("ACK", 1), source=FAR).sent == []
    assert h.advance(30).sent == []


def test_reinvite_without_ack_ends_with_bye(h: Harness) -> None:
    h.answered_call()
    sdp_request(h, "INVITE", 1)
    step = h.advance(64 * T1)
    bye = step.one("BYE")
    assert step.events == []
    step = h.feed(h.respond(200, request=bye))
    assert ended(step) == CallOutcome(CallStatus.COMPLETED, HangupCause.TIMEOUT, HangupSide.LOCAL, None, None)


def test_offerless_reinvite_gets_our_offer_and_the_ack_answers(h: Harness) -> None:
    h.answered_call()
    step = h.feed(h.request("INVITE", 1), source=FAR)
    ok = step.responses()[0]
    offer = sdp_of(ok.body)
    audio = offer.audio()
    assert audio is not None and audio.formats == ["0", "8", "101"] and step.events == []
    ack = h.request("ACK", 1, body=answer_sdp(formats="8", port=43000), content_type="application/sdp")
    step = h.feed(ack, source=FAR)
    [updated] = step.events
    assert (
        isinstance(updated, MediaUpdated)
        and updated.media.codec == "PCMA"
        and updated.media.remote_port == 43000
    )
    assert h.advance(10).sent == []  # no 2xx retransmission after the ACK


def test_offerless_reinvite_whose_ack_has_no_answer_is_ended(h: Harness) -> None:
    h.answered_call()
    h.feed(h.request("INVITE", 1), source=FAR)
    step = h.feed(h.request("ACK", 1), source=FAR)
    bye = step.one("BYE")
    step = h.feed(h.respond(200, request=bye))
    assert ended(step).cause is HangupCause.CODEC_MISMATCH


def test_reinvite_without_common_codec_gets_488_and_the_call_stays(h: Harness) -> None:
    h.answered_call()
    step, reinvite = sdp_request(h, "INVITE", 1, formats="18")
    [rejected] = step.responses()
    assert rejected.status == 488 and (rejected.header("Warning") or "").startswith("305 ")
    assert step.events == []
    assert h.advance(T1).responses()[0].status == 488  # Timer G retransmits the final until ACKed
    # the ACK for the 488 (same branch) belongs to the INVITE server transaction
    ack = make_request(
        "ACK",
        reinvite.uri,
        from_=reinvite.header("From") or "",
        to=rejected.header("To") or "",
        call_id=reinvite.call_id,
        cseq=1,
        via=reinvite.header("Via") or "",
    )
    assert h.feed(ack, source=FAR).sent == []
    assert h.advance(10).sent == []
    bye = h.hangup(HangupCause.API_HANGUP).one("BYE")
    assert bye.cseq.method == "BYE"


def test_reinvite_with_malformed_sdp_gets_400(h: Harness) -> None:
    h.answered_call()
    request = h.request("INVITE", 1, body=b"v=0\r\nthis is not sdp\r\n", content_type="application/sdp")
    assert [r.status for r in h.feed(request, source=FAR).responses()] == [400]


def test_reinvite_with_other_body_gets_415(h: Harness) -> None:
    h.answered_call()
    request = h.request("INVITE", 1, body=b"<xml/>", content_type="application/xml")
    [resp] = h.feed(request, source=FAR).responses()
    assert resp.status == 415 and resp.header("Accept") == "application/sdp"


def test_reinvite_while_our_refresh_is_pending_gets_491(h: Harness) -> None:
    h.answered_call(headers=[("Session-Expires", "120;refresher=uac")])
    refresh = h.advance(60).one("INVITE")
    step, _ = sdp_request(h, "INVITE", 1)
    assert [r.status for r in step.responses()] == [491]
    # UPDATE with an offer also collides; without one it is fine
    step, _ = sdp_request(h, "UPDATE", 2)
    assert [r.status for r in step.responses()] == [491]
    assert [r.status for r in h.feed(h.request("UPDATE", 3), source=FAR).responses()] == [200]
    assert refresh.cseq == (2, "INVITE")


# --------------------------------------------------------------------------- other requests


def test_update_with_sdp_is_answered(h: Harness) -> None:
    h.answered_call()
    step, _ = sdp_request(h, "UPDATE", 1, port=45000)
    [ok] = step.responses()
    assert ok.status == 200 and ok.content_type == "application/sdp" and ok.header("Contact") is not None
    [updated] = step.events
    assert isinstance(updated, MediaUpdated) and updated.media.remote_port == 45000


def test_update_without_sdp_is_accepted(h: Harness) -> None:
    h.answered_call()
    step = h.feed(h.request("UPDATE", 1), source=FAR)
    assert [r.status for r in step.responses()] == [200] and step.events == []


def test_options_in_dialog(h: Harness) -> None:
    h.answered_call()
    [ok] = h.feed(h.request("OPTIONS", 1), source=FAR).responses()
    assert ok.status == 200
    assert ok.header("Allow") == "INVITE"  # parsed back as one field per element
    assert ok.headers.get_all("Allow")[-1] == "UPDATE"
    assert "application/sdp" in ok.headers.get_all("Accept") and ok.header("Supported") == "timer"


@pytest.mark.parametrize(
    ("content_type", "body", "digit", "duration"),
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", "5", 160),
        ("application/dtmf-relay", b"signal= #\nduration = 250", "#", 250),
        ("application/dtmf", b"*", "*", None),
    ],
)
def test_info_dtmf(h: Harness, content_type: str, body: bytes, digit: str, duration: int | None) -> None:
    h.answered_call()
    step = h.feed(h.request("INFO", 1, body=body, content_type=content_type), source=FAR)
    assert [r.status for r in step.responses()] == [200]
    assert step.events == [DtmfReceived(digit, duration)]


def test_other_info_is_accepted_and_ignored(h: Harness) -> None:
    h.answered_call()
    step = h.feed(h.request("INFO", 1, body=b"<x/>", content_type="application/xml"), source=FAR)
    assert [r.status for r in step.responses()] == [200] and step.events == []


def test_unknown_and_unsupported_methods(h: Harness) -> None:
    h.answered_call()
    [refer] = h.feed(h.request("REFER", 1), source=FAR).responses()
    assert refer.status == 405 and refer.headers.get_all("Allow")[0] == "INVITE"
    [unknown] = h.feed(h.request("FROBNICATE", 2), source=FAR).responses()
    assert unknown.status == 501


def test_required_extension_we_lack_gets_420(h: Harness) -> None:
    h.answered_call()
    request = h.request("UPDATE", 1, headers=[("Require", "100rel, timer")])
    [resp] = h.feed(request, source=FAR).responses()
    assert resp.status == 420 and resp.header("Unsupported") == "100rel"


def test_out_of_order_cseq_gets_500(h: Harness) -> None:
    h.answered_call()
    h.feed(h.request("OPTIONS", 10), source=FAR)
    [resp] = h.feed(h.request("OPTIONS", 9), source=FAR).responses()
    assert resp.status == 500


def test_cancel_within_the_dialog(h: Harness) -> None:
    h.answered_call()
    step, reinvite = sdp_request(h, "INVITE", 1)
    assert step.responses()[0].status == 200
    cancel = make_cancel(reinvite)
    assert [r.status for r in h.feed(cancel, source=FAR).responses()] == [200]  # too late: no effect
    other = make_cancel(reinvite)
    other.headers.set("Via", f"SIP/2.0/UDP {FAR_IP}:5070;branch={new_branch()}")
    assert [r.status for r in h.feed(other, source=FAR).responses()] == [481]


def test_requests_after_the_end_get_481(h: Harness) -> None:
    h.answered_call()
    h.feed(h.request("BYE", 1), source=FAR)
    [resp] = h.feed(h.request("INFO", 2), source=FAR).responses()
    assert resp.status == 481


def test_remote_bye_ends_the_call_and_release_waits_for_timer_j(h: Harness) -> None:
    h.answered_call()
    bye = h.request("BYE", 1)
    step = h.feed(bye, source=FAR)
    [ok] = step.responses()
    assert ok.status == 200 and step.sent[0].destination == FAR
    assert ended(step) == CallOutcome(
        "completed", HangupCause.REMOTE_HANGUP, HangupSide.REMOTE, None, None
    )
    assert h.ua.active_calls() == 0 and h.ua.has_call("call_1")
    # a retransmitted BYE is absorbed by its transaction: same 200, no new event
    again = h.feed(bye, source=FAR)
    assert [r.status for r in again.responses()] == [200] and again.events == []
    released_after(h, 64 * T1 + 1)


def test_crossing_byes(h: Harness) -> None:
    h.answered_call()
    bye = h.hangup(HangupCause.API_HANGUP).one("BYE")
    step = h.feed(h.request("BYE", 1), source=FAR)
    assert [r.status for r in step.responses()] == [200] and step.events == []
    step = h.feed(h.respond(481, request=bye))
    assert ended(step) == CallOutcome(CallStatus.COMPLETED, HangupCause.API_HANGUP, HangupSide.LOCAL, None, None)


def test_early_dialog_accepts_info_but_not_bye(h: Harness) -> None:
    h.place()
    h.feed(h.respond(183, sdp=answer_sdp()))
    step = h.feed(
        h.request("INFO", 1, body=b"Signal=1\r\n", content_type="application/dtmf-relay"), source=FAR
    )
    assert [r.status for r in step.responses()] == [200] and step.events == [DtmfReceived("1", None)]
    assert [r.status for r in h.feed(h.request("BYE", 2), source=FAR).responses()] == [481]


# --------------------------------------------------------------------------- ACKs, transport errors, failing handlers


def test_ack_reusing_the_reinvite_branch_is_accepted(h: Harness) -> None:
    h.answered_call()
    branch = new_branch()
    request = h.request("INVITE", 1, body=answer_sdp(), content_type="application/sdp", branch=branch)
    h.feed(request, source=FAR)
    # an RFC 2543 style peer: the ACK for the 2xx carries the INVITE's branch
    assert h.feed(h.request("ACK", 1, branch=branch), source=FAR).sent == []
    assert h.advance(10).sent == []  # no 2xx retransmissions: the ACK was taken


def test_transport_error_towards_the_peer_drops_its_transactions(h: Harness) -> None:
    h.answered_call()
    h.feed(h.request("OPTIONS", 1), source=FAR, transport="tcp")
    assert h.ua.next_deadline() is not None  # the INVITE's Timer M is still running
    h.ua.transport_error(FAR, "tcp", h.now)
    assert h.drain().events == []
    assert h.hangup(HangupCause.API_HANGUP).one("BYE").cseq == (2, "BYE")


def test_identical_reinvite_is_not_news(h: Harness) -> None:
    h.answered_call()
    step, _ = sdp_request(h, "INVITE", 1)  # same SDP as their answer: a refresh, not a change
    assert [r.status for r in step.responses()] == [200] and step.events == []


def test_a_failing_handler_still_answers_500(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.sip.in_dialog import InDialogServer

    h.answered_call()

    def broken(self: InDialogServer, *args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setitem(InDialogServer._REQUEST_HANDLERS, "INFO", broken)
    [resp] = h.feed(h.request("INFO", 1), source=FAR).responses()
    assert resp.status == 500
    assert h.ua.stats.internal_errors == 1
    h.ua.stats.internal_errors = 0  # expected here
    monkeypatch.undo()
    assert ended(h.feed(h.request("BYE", 2), source=FAR)).cause is HangupCause.REMOTE_HANGUP
    assert h.advance(64 * T1 + 1).kinds() == ["Released"]


@pytest.mark.parametrize(("make_error", "status"), TYPED_ERRORS, ids=TYPED_ERROR_IDS)
def test_a_handler_raising_a_typed_error_answers_with_its_status(
    h: Harness, monkeypatch: pytest.MonkeyPatch, make_error: Callable[[], Exception], status: int
) -> None:
    from gateway.sip.in_dialog import InDialogServer

    h.answered_call()

    def failing(self: InDialogServer, *args: object) -> None:
        raise make_error()

    monkeypatch.setitem(InDialogServer._REQUEST_HANDLERS, "INFO", failing)
    step = h.feed(h.request("INFO", 1), source=FAR)
    assert [r.status for r in step.responses()] == [status]  # once, by the call's transaction
    assert step.events == [] and h.ua.stats.bad_messages == 1
    monkeypatch.undo()
    assert ended(h.feed(h.request("BYE", 2), source=FAR)).cause is HangupCause.REMOTE_HANGUP
