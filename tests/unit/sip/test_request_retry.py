"""Retrying our requests after 401/407 and 422 (gateway.sip.request_retry)."""

from __future__ import annotations

import pytest

from gateway.outcome import HangupCause, HangupSide
from gateway.sip.digest import DigestSession, compute_authorization
from gateway.sip.digest_challenge import DigestChallenge, parse_auth_params
from gateway.sip.message import SipResponse, make_request, make_response
from gateway.sip.request_retry import RetryPolicy
from gateway.sip.session_timer import SessionTimer
from gateway.sip.useragent import CallOutcome
from tests.support.sip_harness import CREDENTIALS, TRUNK, Harness, ended

# --------------------------------------------------------------------------- through a call


def _check_authorization(value: str, challenge_header: str, method: str, uri: str, nc: int = 1) -> None:
    scheme, params = parse_auth_params(value)
    assert scheme == "Digest" and params["uri"] == uri
    challenge = DigestChallenge.parse(challenge_header)
    expected = compute_authorization(
        challenge, CREDENTIALS, method, uri, cnonce=params.get("cnonce"), nc=int(params.get("nc", "1"), 16)
    )
    assert parse_auth_params(expected)[1]["response"] == params["response"]
    assert int(params.get("nc", "1"), 16) == nc


@pytest.mark.parametrize(
    ("status", "challenge_name", "answer_name"),
    [(401, "WWW-Authenticate", "Authorization"), (407, "Proxy-Authenticate", "Proxy-Authorization")],
)
def test_digest_challenge_is_answered(h: Harness, status: int, challenge_name: str, answer_name: str) -> None:
    h.place(credentials=CREDENTIALS)
    first = h.invite
    assert first is not None
    challenge = 'Digest realm="carrier", nonce="abc123", qop="auth", algorithm=MD5, opaque="xyz"'
    step = h.feed(h.respond(status, headers=[(challenge_name, challenge)]))
    assert step.events == []
    retry = step.one("INVITE")
    assert step.sent_to("INVITE").destination == TRUNK
    h.invite = retry
    assert retry.call_id == first.call_id and retry.from_tag == first.from_tag and retry.to_tag is None
    assert retry.cseq == (2, "INVITE") and retry.via.branch != first.via.branch
    assert retry.body == first.body
    value = retry.header(answer_name)
    assert value is not None
    _check_authorization(value, challenge, "INVITE", str(first.uri))
    assert parse_auth_params(value)[1]["opaque"] == "xyz"
    step = h.answer()
    assert step.kinds() == ["Answered"]
    # the ACK for the 2xx carries the INVITE's credentials (RFC 3261 22.1)
    assert step.one("ACK").header(answer_name) == value and step.one("ACK").cseq == (2, "ACK")


def test_digest_retries_are_capped(h: Harness) -> None:
    h.place(credentials=CREDENTIALS, max_auth_attempts=2)
    for n in range(2):
        challenge = f'Digest realm="carrier", nonce="nonce{n}"'
        step = h.feed(h.respond(401, headers=[("WWW-Authenticate", challenge)]))
        h.invite = step.one("INVITE")
    step = h.feed(h.respond(401, headers=[("WWW-Authenticate", 'Digest realm="carrier", nonce="nonce9"')]))
    assert step.requests("INVITE") == []
    assert ended(step) == CallOutcome(
        "failed", HangupCause.AUTH_FAILED, HangupSide.REMOTE, 401, "Unauthorized"
    )


def test_same_nonce_challenged_again_means_wrong_credentials(h: Harness) -> None:
    h.place(credentials=CREDENTIALS, max_auth_attempts=3)
    challenge = [("Proxy-Authenticate", 'Digest realm="carrier", nonce="same"')]
    h.invite = h.feed(h.respond(407, headers=challenge)).one("INVITE")
    step = h.feed(h.respond(407, headers=challenge))
    assert step.requests("INVITE") == []
    assert ended(step).cause is HangupCause.AUTH_FAILED


def test_unusable_challenge_fails_auth(h: Harness) -> None:
    h.place(credentials=CREDENTIALS)
    step = h.feed(h.respond(401, headers=[("WWW-Authenticate", 'Basic realm="x"')]))
    assert ended(step).cause is HangupCause.AUTH_FAILED


def test_bye_challenged_is_retried_with_credentials(h: Harness) -> None:
    h.place(credentials=CREDENTIALS)
    h.answer()
    bye = h.hangup(HangupCause.API_HANGUP).one("BYE")
    challenge = h.respond(401, request=bye, headers=[("WWW-Authenticate", 'Digest realm="c", nonce="n9"')])
    step = h.feed(challenge)
    retry = step.one("BYE")
    assert retry.cseq == (3, "BYE") and retry.header("Authorization") is not None
    assert step.events == []
    assert ended(h.feed(h.respond(200, request=retry))).cause is HangupCause.API_HANGUP


def test_422_is_retried_once_with_the_larger_min_se(h: Harness) -> None:
    h.place(session_expires=90, min_se=90)
    first = h.invite
    assert first is not None
    step = h.feed(h.respond(422, headers=[("Min-SE", "600")]))
    retry = step.one("INVITE")
    h.invite = retry
    assert retry.cseq == (2, "INVITE") and retry.via.branch != first.via.branch
    assert retry.header("Session-Expires") == "600;refresher=uac" and retry.header("Min-SE") == "600"
    step = h.feed(h.respond(422, headers=[("Min-SE", "1200")]))
    assert ended(step) == CallOutcome(
        "failed", HangupCause.REJECTED, HangupSide.REMOTE, 422, "Session Interval Too Small"
    )


def test_422_to_our_refresh_retries_with_larger_interval(h: Harness) -> None:
    h.answered_call(headers=[("Session-Expires", "120;refresher=uac")])
    refresh = h.advance(60).one("INVITE")
    step = h.feed(h.respond(422, request=refresh, headers=[("Min-SE", "300")]))
    retry = step.one("INVITE")
    assert retry.cseq == (3, "INVITE") and retry.header("Session-Expires") == "300;refresher=uac"
    assert retry.header("Min-SE") == "300"


def test_refresh_challenged_is_retried_with_credentials(h: Harness) -> None:
    h.place(credentials=CREDENTIALS)
    h.answer(headers=[("Session-Expires", "120;refresher=uac")])
    refresh = h.advance(60).one("INVITE")
    challenge = h.respond(
        407, request=refresh, headers=[("Proxy-Authenticate", 'Digest realm="c", nonce="r1"')]
    )
    retry = h.feed(challenge).one("INVITE")
    assert retry.cseq == (3, "INVITE") and (retry.header("Proxy-Authorization") or "").startswith("Digest ")


# --------------------------------------------------------------------------- RetryPolicy itself


def _challenge(status: int, nonce: str, *, method: str = "INVITE") -> SipResponse:
    request = make_request(
        method,
        "sip:+14155552671@carrier.example.com",
        from_="<sip:+12025551234@198.51.100.7>;tag=gw1",
        to="<sip:+14155552671@carrier.example.com>",
        call_id="c1@198.51.100.7",
        cseq=1,
        via="SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-rr-1",
    )
    headers = {
        401: [("WWW-Authenticate", f'Digest realm="carrier", nonce="{nonce}"')],
        407: [("Proxy-Authenticate", f'Digest realm="proxy", nonce="{nonce}"')],
        422: [("Min-SE", nonce)],
    }.get(status, [])
    return make_response(request, status, headers=headers)


def _policy(max_auth_attempts: int = 2) -> RetryPolicy:
    digest = DigestSession(CREDENTIALS, max_attempts=5)
    return RetryPolicy(digest, max_auth_attempts, SessionTimer(90, 90))


def test_challenges_are_answered_up_to_the_limit_per_request() -> None:
    policy = _policy(max_auth_attempts=2)
    assert not policy.challenged and policy.credentials("INVITE", "sip:x", b"") == []
    assert policy.retry(_challenge(401, "n1")) and policy.challenged
    assert [name for name, _ in policy.credentials("INVITE", "sip:x", b"")] == ["Authorization"]
    assert policy.retry(_challenge(407, "p1"))
    assert not policy.retry(_challenge(401, "n2"))  # the third challenge of one request
    policy.start()  # another request: its own count
    assert not policy.challenged
    assert policy.retry(_challenge(401, "n3"))


def test_a_challenge_that_cannot_be_answered_is_final() -> None:
    policy = _policy()
    basic = _challenge(401, "n1")
    basic.headers.set("WWW-Authenticate", 'Basic realm="carrier"')
    assert not policy.retry(basic) and not policy.challenged
    assert not RetryPolicy(None, 2).retry(_challenge(401, "n1"))  # no credentials at all


def test_a_422_is_retried_once_per_request_and_only_for_an_invite() -> None:
    policy = _policy()
    assert not policy.retry(_challenge(422, "x"))  # no usable Min-SE
    assert policy.retry(_challenge(422, "600"))
    assert not policy.retry(_challenge(422, "900"))
    policy.start()
    assert not policy.retry(_challenge(422, "1200", method="BYE"))  # a BYE has no session interval
    assert policy.retry(_challenge(422, "1200"))
    assert not RetryPolicy(None, 2).retry(_challenge(422, "600"))  # no session timer to lengthen


@pytest.mark.parametrize("status", [400, 403, 480, 486, 500, 603])
def test_other_failures_are_final(status: int) -> None:
    assert not _policy().retry(_challenge(status, ""))
