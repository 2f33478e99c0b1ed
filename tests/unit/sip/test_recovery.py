"""What ending a call takes (LegSnapshot) as the call goes, and ending it from a fresh user agent
(LegRelease): CANCEL with the INVITE's own Via while ringing, BYE with the next CSeq once
confirmed, answers to whatever the far end says meanwhile."""

from __future__ import annotations

import pytest

from gateway.sip.message import SipRequest, make_response
from gateway.sip.snapshot import LegSnapshot, SnapshotError
from gateway.sip.useragent import Ended, Released
from tests.support.sip_harness import CREDENTIALS, FAR, TRUNK, Harness, Step, answer_sdp

PROXY = "<sip:203.0.113.20:5060;lr>"


def _through_json(snapshot: LegSnapshot) -> LegSnapshot:
    import json

    return LegSnapshot.from_json(json.loads(json.dumps(snapshot.to_json())))


def test_the_invite_is_reported_then_the_dialog() -> None:
    h = Harness()
    step = h.place()
    assert [s.phase for s in step.legs] == ["inviting"]
    assert h.invite is not None
    kept = step.legs[0].invite_request()
    assert kept.headers.get("Via") == h.invite.headers.get("Via")  # branch and sent-by kept
    assert kept.body == b"" and kept.headers.get("Content-Type") is None  # no SDP kept
    step = h.feed(h.respond(180))
    assert step.legs == []  # nothing changed
    step = h.answer(record_route=[PROXY])
    assert [s.phase for s in step.legs] == ["confirmed"]
    assert step.kinds() == ["Answered"]
    dialog = _through_json(step.legs[0]).dialog_state()
    assert dialog.call_id == h.invite.call_id
    assert dialog.local_seq == 1 and dialog.remote_tag == "callee1"
    assert [str(r.uri) for r in dialog.route_set] == ["sip:203.0.113.20:5060;lr"]


def test_an_auth_retry_reports_the_new_invite() -> None:
    h = Harness()
    h.place(credentials=CREDENTIALS)
    challenge = 'Digest realm="carrier", nonce="abc", algorithm=MD5, qop="auth"'
    step = h.feed(h.respond(407, headers=[("Proxy-Authenticate", challenge)]))
    retry = step.one("INVITE")
    assert [s.invite_request().headers.get("Via") for s in step.legs] == [retry.headers.get("Via")]
    assert "Proxy-Authorization" not in (step.legs[0].invite or "")  # credentials are not stored


def test_a_session_refresh_reports_the_next_cseq() -> None:
    h = Harness()
    h.place(session_expires=90, min_se=90)
    h.feed(h.respond(180))
    h.answer(headers=[("Session-Expires", "90;refresher=uac"), ("Require", "timer")])
    step = h.advance(46)
    refresh = step.requests("INVITE")[0]  # and its retransmission
    assert [s.dialog_state().local_seq for s in step.legs] == [refresh.cseq.number]


def test_unreadable_snapshots_are_refused() -> None:
    for data in ({}, {"phase": "x"}, {"phase": "confirmed", "call_id": "a", "destination": ["h", 1],
                                      "transport": "udp", "dialog": {"local_tag": "x"}}):
        with pytest.raises(SnapshotError):
            LegSnapshot.from_json(data)


# ----------------------------------------------------------------------------- releasing


def _snapshots(*, record_route: list[str] | None = None, answered: bool = True) -> tuple[Harness, LegSnapshot]:
    """A call placed by one user agent (then 'crashed'); its last snapshot, through JSON."""
    old = Harness()
    legs = old.place().legs
    legs += old.feed(old.respond(180)).legs
    if answered:
        legs += old.answer(record_route=record_route or []).legs
    return old, _through_json(legs[-1])


def _release(snapshot: LegSnapshot, **kw: object) -> tuple[Harness, Step]:
    new = Harness()
    new.ua.release("call_1", snapshot, kw.get("credentials"), new.now)  # type: ignore[arg-type]
    return new, new.drain()


def test_a_confirmed_call_gets_a_bye_with_the_next_cseq() -> None:
    old, snapshot = _snapshots(record_route=[PROXY])
    assert old.invite is not None
    new, step = _release(snapshot)
    bye = step.one("BYE")
    assert bye.call_id == old.invite.call_id and bye.cseq.number == 2
    assert bye.from_tag == old.invite.from_tag and bye.to_tag == "callee1"
    assert bye.headers.get("Route") == PROXY  # routed like any in-dialog request
    assert step.sent_to("BYE").destination == ("203.0.113.20", 5060)
    assert step.kinds() == []
    step = new.feed(new.respond(200, request=bye), source=FAR)
    assert [type(e) for e in step.events] == [Ended]
    ended = step.events[0]
    assert isinstance(ended, Ended)
    assert (ended.outcome.cause, ended.outcome.sip_status) == ("gateway_restart", 200)
    # Released once the BYE's transaction has absorbed retransmissions (Timer K).
    assert [type(e) for e in new.advance(6).events] == [Released]


def test_a_challenged_bye_is_answered_once_with_the_trunk_credentials() -> None:
    _, snapshot = _snapshots()
    new, step = _release(snapshot, credentials=CREDENTIALS)
    bye = step.one("BYE")
    challenge = 'Digest realm="carrier", nonce="n1", algorithm=MD5'
    step = new.feed(new.respond(401, request=bye, headers=[("WWW-Authenticate", challenge)]))
    retry = step.one("BYE")
    assert retry.cseq.number == bye.cseq.number + 1 and retry.headers.get("Authorization")
    step = new.feed(new.respond(401, request=retry, headers=[("WWW-Authenticate", challenge)]))
    assert step.requests("BYE") == [] and isinstance(step.events[0], Ended)  # no second try


def test_an_unanswered_bye_ends_at_timer_f() -> None:
    _, snapshot = _snapshots()
    new, step = _release(snapshot)
    step = new.advance(31)
    assert len(step.requests("BYE")) >= 5 and step.events == []  # retransmitted over UDP
    step = new.advance(2)
    assert [type(e) for e in step.events] == [Ended, Released]


def test_a_ringing_call_is_cancelled_with_the_invites_via() -> None:
    old, snapshot = _snapshots(answered=False)
    assert old.invite is not None
    new, step = _release(snapshot)
    cancel = step.one("CANCEL")
    assert cancel.headers.get("Via") == old.invite.headers.get("Via")  # 9.1: the same branch and sent-by
    assert cancel.cseq.number == old.invite.cseq.number and cancel.uri == old.invite.uri
    assert step.sent_to("CANCEL").destination == TRUNK
    step = new.feed(new.respond(200, request=cancel))
    assert isinstance(step.events[0], Ended)
    # The INVITE's 487 reaches the new process: it is ACKed (17.1.1.3), retransmissions too.
    terminated = make_response(old.invite, 487, to_tag="callee1")
    step = new.feed(terminated)
    ack = step.one("ACK")
    assert ack.headers.get("Via") == old.invite.headers.get("Via") and ack.to_tag == "callee1"
    assert bytes(new.feed(terminated).one("ACK")) == bytes(ack)
    step = new.advance(64 * 0.5)
    assert [type(e) for e in step.events] == [Released]


def test_a_2xx_that_crossed_the_cancel_is_acked_and_byed() -> None:
    old, snapshot = _snapshots(answered=False)
    assert old.invite is not None
    new, step = _release(snapshot)
    cancel = step.one("CANCEL")
    step = new.feed(old.respond(200, sdp=answer_sdp()))
    assert step.one("ACK").cseq.method == "ACK"
    bye = step.one("BYE")
    assert bye.to_tag == "callee1" and bye.cseq.number == old.invite.cseq.number + 1
    step = new.feed(new.respond(200, request=cancel))
    assert step.events == []  # the BYE decides now
    step = new.feed(new.respond(200, request=bye), source=FAR)
    assert isinstance(step.events[0], Ended)


def test_a_bye_from_the_far_end_meanwhile_is_answered() -> None:
    old, snapshot = _snapshots()
    new, step = _release(snapshot)
    their_bye: SipRequest = old.request("BYE", 5)
    step = new.feed(their_bye, source=FAR)
    assert step.responses()[0].status == 200
    assert isinstance(step.events[0], Ended)


def test_release_refuses_a_call_ref_in_use() -> None:
    from gateway.sip.useragent import UaUsageError

    _, snapshot = _snapshots()
    new = Harness()
    new.place()
    with pytest.raises(UaUsageError):
        new.ua.release("call_1", snapshot, None, 0.0)
