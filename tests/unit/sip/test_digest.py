"""Answering digest challenges (gateway.sip.digest): vectors, answers and the session."""

from __future__ import annotations

import hashlib
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sip.digest import (
    AuthFailed,
    AuthFailureReason,
    AuthState,
    DigestCredentials,
    DigestSession,
    RetryReason,
    compute_authorization,
)
from gateway.sip.digest_challenge import (
    DigestAlgorithm,
    DigestChallenge,
    DigestError,
    UnsupportedQop,
    parse_auth_params,
)

# --------------------------------------------------------------------------- published vectors

RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
MUFASA = DigestCredentials("Mufasa", "Circle of Life")


def rfc7616_challenge(algorithm: str) -> str:
    # Laid out over several lines as in RFC 7616 section 3.9.1.
    return (
        "Digest\r\n"
        '    realm="http-auth@example.org",\r\n'
        '    qop="auth, auth-int",\r\n'
        f"    algorithm={algorithm},\r\n"
        f'    nonce="{RFC7616_NONCE}",\r\n'
        f'    opaque="{RFC7616_OPAQUE}"'
    )


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1(algorithm: str, response: str) -> None:
    challenge = DigestChallenge.parse(rfc7616_challenge(algorithm))
    assert challenge.algorithm == DigestAlgorithm.parse(algorithm)
    assert challenge.qop == ("auth", "auth-int")
    value = compute_authorization(challenge, MUFASA, "GET", "/dir/index.html", cnonce=RFC7616_CNONCE, nc=1)
    scheme, params = parse_auth_params(value)
    assert scheme == "Digest"
    assert params == {
        "username": "Mufasa",
        "realm": "http-auth@example.org",
        "nonce": RFC7616_NONCE,
        "uri": "/dir/index.html",
        "response": response,
        "algorithm": algorithm,
        "cnonce": RFC7616_CNONCE,
        "nc": "00000001",
        "qop": "auth",
        "opaque": RFC7616_OPAQUE,
    }


def test_rfc7616_section_3_9_2_sha512_256_userhash_with_erratum_4897() -> None:
    # The username hash and response printed in RFC 7616 are wrong (erratum 4897);
    # these are the corrected values.
    challenge = DigestChallenge.parse(
        'Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256, '
        'nonce="5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK", '
        'opaque="HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS", charset=UTF-8, userhash=true'
    )
    assert challenge.userhash and challenge.charset == "UTF-8"
    value = compute_authorization(
        challenge,
        DigestCredentials("J\u00e4s\u00f8n Doe", "Secret, or not?"),
        "GET",
        "/doe.json",
        cnonce="NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
    )
    _, params = parse_auth_params(value)
    assert params["username"] == "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"
    assert params["response"] == "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
    assert params["userhash"] == "true"
    assert params["algorithm"] == "SHA-512-256"


def test_rfc2617_section_3_5_example() -> None:
    challenge = DigestChallenge.parse(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = compute_authorization(
        challenge,
        DigestCredentials("Mufasa", "Circle Of Life"),
        "GET",
        "/dir/index.html",
        cnonce="0a4f113b",
    )
    _, params = parse_auth_params(value)
    assert params["response"] == "6629fae49393a05397450978507c4ef1"
    assert params["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"
    assert params["algorithm"] == "MD5"


# draft-smith-sipping-auth-examples: bob / zanzibar at biloxi.com, INVITE sip:bob@biloxi.com.
SIP_NONCE = "dcd98b7102dd2f0e8b11d0f600bfb0c093"
SIP_OPAQUE = "5ccc069c403ebaf9f0171e9517f40e41"
BOB = DigestCredentials("bob", "zanzibar")
SIP_BODY = (
    b"v=0\r\n"
    b"o=bob 2890844526 2890844526 IN IP4 media.biloxi.com\r\n"
    b"s=-\r\n"
    b"c=IN IP4 media.biloxi.com\r\n"
    b"t=0 0\r\n"
    b"m=audio 49170 RTP/AVP 0\r\n"
    b"a=rtpmap:0 PCMU/8000\r\n"
    b"m=video 51372 RTP/AVP 31\r\n"
    b"a=rtpmap:31 H261/90000\r\n"
    b"m=video 53000 RTP/AVP 32\r\n"
    b"a=rtpmap:32 MPV/90000\r\n"
)


def sip_challenge(extra: str) -> DigestChallenge:
    return DigestChallenge.parse(
        f'Digest realm="biloxi.com", nonce="{SIP_NONCE}", opaque="{SIP_OPAQUE}"{extra}'
    )


@pytest.mark.parametrize(
    ("extra", "qop", "response"),
    [
        ("", None, "bf57e4e0d0bffc0fbaedce64d59add5e"),
        (', qop="auth"', "auth", "89eb0059246c02b2f6ee02c7961d5ea3"),
        (', qop="auth", algorithm=MD5', "auth", "89eb0059246c02b2f6ee02c7961d5ea3"),
        (', qop="auth", algorithm=MD5-sess', "auth", "e4e4ea61d186d07a92c9e1f6919902e9"),
        (', qop="auth-int", algorithm=MD5', "auth-int", "bdbeebb2da6adb6bca02599c2239e192"),
        (', qop="auth-int", algorithm=MD5-sess', "auth-int", "91984da2d8663716e91554859c22ca70"),
    ],
)
def test_sip_invite_vectors(extra: str, qop: str | None, response: str) -> None:
    value = compute_authorization(
        sip_challenge(extra), BOB, "INVITE", "sip:bob@biloxi.com", body=SIP_BODY, cnonce="0a4f113b"
    )
    _, params = parse_auth_params(value)
    assert params["response"] == response
    assert params.get("qop") == qop
    assert params["uri"] == "sip:bob@biloxi.com"


def test_rfc2069_style_has_no_cnonce_nc_or_qop() -> None:
    value = compute_authorization(sip_challenge(""), BOB, "REGISTER", "sip:biloxi.com")
    _, params = parse_auth_params(value)
    assert not {"cnonce", "nc", "qop"} & params.keys()
    assert params["opaque"] == SIP_OPAQUE


def test_md5_sess_without_qop_still_sends_its_cnonce() -> None:
    value = compute_authorization(
        sip_challenge(", algorithm=MD5-sess"), BOB, "INVITE", "sip:bob@biloxi.com", cnonce="abc"
    )
    _, params = parse_auth_params(value)
    assert params["cnonce"] == "abc"
    assert "nc" not in params and "qop" not in params
    ha1 = hashlib.md5(f"{hashlib.md5(b'bob:biloxi.com:zanzibar').hexdigest()}:{SIP_NONCE}:abc".encode())
    ha2 = hashlib.md5(b"INVITE:sip:bob@biloxi.com").hexdigest()
    assert params["response"] == hashlib.md5(f"{ha1.hexdigest()}:{SIP_NONCE}:{ha2}".encode()).hexdigest()


def test_sha256_sess_matches_the_rfc7616_formula() -> None:
    challenge = sip_challenge(", qop=auth, algorithm=SHA-256-sess")

    def h(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    ha1 = h(f"{h('bob:biloxi.com:zanzibar')}:{SIP_NONCE}:c1")
    expected = h(f"{ha1}:{SIP_NONCE}:00000003:c1:auth:{h('BYE:sip:bob@biloxi.com')}")
    value = compute_authorization(challenge, BOB, "BYE", "sip:bob@biloxi.com", cnonce="c1", nc=3)
    assert parse_auth_params(value)[1]["response"] == expected


# --------------------------------------------------------------------------- answer details


def test_auth_is_chosen_over_auth_int_and_auth_int_hashes_the_body() -> None:
    both = sip_challenge(', qop="auth-int,auth"')
    only_int = sip_challenge(', qop="auth-int"')
    assert both.chosen_qop == "auth"
    assert only_int.chosen_qop == "auth-int"
    a = compute_authorization(only_int, BOB, "INVITE", "sip:b@x", body=b"one", cnonce="c")
    b = compute_authorization(only_int, BOB, "INVITE", "sip:b@x", body=b"two", cnonce="c")
    assert parse_auth_params(a)[1]["response"] != parse_auth_params(b)[1]["response"]
    # A str body is hashed as its UTF-8 bytes.
    c = compute_authorization(only_int, BOB, "INVITE", "sip:b@x", body="one", cnonce="c")
    assert a == c


def test_unsupported_qop_only() -> None:
    challenge = sip_challenge(', qop="auth-conf"')
    assert not challenge.answerable
    with pytest.raises(UnsupportedQop) as info:
        compute_authorization(challenge, BOB, "INVITE", "sip:b@x")
    assert info.value.qop == ("auth-conf",)
    assert info.value.hangup_cause == "auth_failed"


def test_nc_is_eight_lowercase_hex_digits_and_bounded() -> None:
    challenge = sip_challenge(', qop="auth"')
    value = compute_authorization(challenge, BOB, "INVITE", "sip:b@x", cnonce="c", nc=255)
    assert parse_auth_params(value)[1]["nc"] == "000000ff"
    assert "nc=000000ff" in value
    for bad in (0, 0x1_0000_0000):
        with pytest.raises(DigestError):
            compute_authorization(challenge, BOB, "INVITE", "sip:b@x", nc=bad)


def test_default_cnonce_is_random() -> None:
    challenge = sip_challenge(', qop="auth"')
    first = parse_auth_params(compute_authorization(challenge, BOB, "INVITE", "sip:b@x"))[1]
    second = parse_auth_params(compute_authorization(challenge, BOB, "INVITE", "sip:b@x"))[1]
    assert first["cnonce"] != second["cnonce"]
    assert len(first["cnonce"]) == 32 and all(ch in string.hexdigits for ch in first["cnonce"])


def test_quotes_are_escaped_and_control_characters_refused() -> None:
    challenge = DigestChallenge.parse(r'Digest realm="a \"quoted\" realm, with comma", nonce="n"')
    value = compute_authorization(challenge, DigestCredentials('we"ird\\user', "pw"), "INVITE", "sip:x")
    _, params = parse_auth_params(value)
    assert params["realm"] == 'a "quoted" realm, with comma'
    assert params["username"] == 'we"ird\\user'
    with pytest.raises(DigestError):
        compute_authorization(challenge, DigestCredentials("user\r\nX-Evil: 1", "pw"), "INVITE", "sip:x")


def test_header_parameter_order() -> None:
    value = compute_authorization(sip_challenge(', qop="auth"'), BOB, "INVITE", "sip:b@x", cnonce="c")
    names = [part.split("=", 1)[0] for part in value.removeprefix("Digest ").split(", ")]
    assert names == [
        "username",
        "realm",
        "nonce",
        "uri",
        "response",
        "algorithm",
        "cnonce",
        "nc",
        "qop",
        "opaque",
    ]


def test_credentials_repr_hides_password() -> None:
    assert "zanzibar" not in repr(BOB)


# --------------------------------------------------------------------------- round trips


def test_empty_opaque_is_echoed() -> None:
    challenge = DigestChallenge.parse('Digest realm="r", nonce="n", opaque=""')
    assert 'opaque=""' in compute_authorization(challenge, BOB, "INVITE", "sip:x")


_quotable = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0"), max_size=30
)


@given(username=_quotable, password=_quotable, uri=_quotable, nc=st.integers(1, 0xFFFFFFFF))
def test_authorization_round_trips(username: str, password: str, uri: str, nc: int) -> None:
    challenge = sip_challenge(', qop="auth", algorithm=SHA-256')
    value = compute_authorization(challenge, DigestCredentials(username, password), "INVITE", uri, nc=nc)
    _, params = parse_auth_params(value)
    assert params["username"] == username
    assert params["uri"] == uri
    assert int(params["nc"], 16) == nc


# --------------------------------------------------------------------------- session


def counter_cnonces() -> tuple[list[str], DigestSession]:
    issued: list[str] = []

    def factory() -> str:
        issued.append(f"cn{len(issued) + 1}")
        return issued[-1]

    return issued, DigestSession(BOB, cnonce_factory=factory)


def www(nonce: str, *, stale: bool = False, realm: str = "biloxi.com", algorithm: str = "MD5") -> str:
    flag = ", stale=true" if stale else ""
    return f'Digest realm="{realm}", nonce="{nonce}", qop="auth", algorithm={algorithm}{flag}'


def send(session: DigestSession, method: str = "INVITE") -> dict[str, dict[str, str]]:
    return {
        name: parse_auth_params(value)[1] for name, value in session.authorization_headers(method, "sip:b@x")
    }


def test_alias() -> None:
    assert AuthState is DigestSession


def test_nc_increments_while_the_nonce_is_reused() -> None:
    issued, session = counter_cnonces()
    assert session.authorization_headers("INVITE", "sip:b@x") == []
    assert session.on_challenge(www_authenticate=[www("n1")]) is RetryReason.FIRST_CHALLENGE
    first = send(session)["Authorization"]
    assert (first["nc"], first["cnonce"], first["nonce"]) == ("00000001", "cn1", "n1")
    session.on_success()
    later = send(session, "BYE")["Authorization"]
    assert (later["nc"], later["cnonce"]) == ("00000002", "cn1")
    assert send(session, "BYE")["Authorization"]["nc"] == "00000003"
    assert issued == ["cn1"]


def test_stale_rechallenge_is_not_a_failure() -> None:
    _, session = counter_cnonces()
    session.on_challenge(www_authenticate=[www("n1")])
    send(session)
    send(session)
    assert session.on_challenge(www_authenticate=[www("n2", stale=True)]) is RetryReason.STALE_NONCE
    retry = send(session)["Authorization"]
    assert (retry["nonce"], retry["nc"], retry["cnonce"]) == ("n2", "00000001", "cn2")
    # The credentials themselves were never rejected, so a fresh nonce is still allowed.
    assert session.on_challenge(www_authenticate=[www("n3")]) is RetryReason.NEW_NONCE


def test_same_nonce_rejected_again_gives_up() -> None:
    _, session = counter_cnonces()
    session.on_challenge(www_authenticate=[www("n1")])
    send(session)
    with pytest.raises(AuthFailed) as info:
        session.on_challenge(www_authenticate=[www("n1")])
    assert info.value.reason is AuthFailureReason.CREDENTIALS_REJECTED
    assert info.value.realm == "biloxi.com"
    assert info.value.hangup_cause == "auth_failed"


def test_retry_cap() -> None:
    _, session = counter_cnonces()
    session.on_challenge(www_authenticate=[www("n1")])
    send(session)
    assert session.on_challenge(www_authenticate=[www("n2")]) is RetryReason.NEW_NONCE
    send(session)
    with pytest.raises(AuthFailed) as info:
        session.on_challenge(www_authenticate=[www("n3")])
    assert info.value.reason is AuthFailureReason.MAX_ATTEMPTS


def test_retry_cap_is_configurable_and_reset_by_success() -> None:
    session = DigestSession(BOB, max_attempts=1)
    session.on_challenge(www_authenticate=[www("n1")])
    send(session)
    session.on_success()
    # Pre-emptive credentials on a later request meet a fresh nonce: one retry is allowed.
    send(session, "BYE")
    assert session.on_challenge(www_authenticate=[www("n2")]) is RetryReason.NEW_NONCE
    send(session, "BYE")
    with pytest.raises(AuthFailed):
        session.on_challenge(www_authenticate=[www("n3")])


def test_endless_stale_is_capped() -> None:
    session = DigestSession(BOB, max_stale_retries=2)
    session.on_challenge(www_authenticate=[www("n0")])
    for i in range(2):
        send(session)
        assert session.on_challenge(www_authenticate=[www(f"s{i}", stale=True)]) is RetryReason.STALE_NONCE
    send(session)
    with pytest.raises(AuthFailed) as info:
        session.on_challenge(www_authenticate=[www("s9", stale=True)])
    assert info.value.reason is AuthFailureReason.STALE_LOOP


def test_challenge_received_twice_before_answering_is_not_a_failure() -> None:
    _, session = counter_cnonces()
    session.on_challenge(www_authenticate=[www("n1")])
    assert session.on_challenge(www_authenticate=[www("n2")]) is RetryReason.FIRST_CHALLENGE
    assert send(session)["Authorization"]["nonce"] == "n2"


def test_proxy_and_server_realms_are_answered_together() -> None:
    _, session = counter_cnonces()
    assert session.on_challenge(proxy_authenticate=[www("p1", realm="proxy.carrier")]) is (
        RetryReason.FIRST_CHALLENGE
    )
    send(session)
    session.on_challenge(www_authenticate=[www("u1", realm="pbx")])
    headers = session.authorization_headers("INVITE", "sip:b@x")
    assert [name for name, _ in headers] == ["Proxy-Authorization", "Authorization"]
    params = {name: parse_auth_params(value)[1] for name, value in headers}
    assert params["Proxy-Authorization"]["nc"] == "00000002"
    assert params["Authorization"]["nc"] == "00000001"
    assert session.realms == ("proxy.carrier", "pbx")


def test_session_prefers_sha256_when_both_are_offered() -> None:
    session = DigestSession(BOB)
    session.on_challenge(www_authenticate=[www("m", algorithm="MD5"), www("s", algorithm="SHA-256")])
    sent = send(session)["Authorization"]
    assert (sent["algorithm"], sent["nonce"]) == ("SHA-256", "s")
    ordered = DigestSession(BOB, policy="server_order")
    ordered.on_challenge(www_authenticate=[www("m", algorithm="MD5"), www("s", algorithm="SHA-256")])
    assert send(ordered)["Authorization"]["algorithm"] == "MD5"


@pytest.mark.parametrize(
    "values",
    [
        [],
        ['Basic realm="x"'],
        ['Digest realm="x", nonce="n", algorithm=SHA-1'],
        ['Digest realm="x", nonce="n", qop="auth-conf"'],
        ['Digest realm="x'],
    ],
)
def test_nothing_answerable_fails(values: list[str]) -> None:
    session = DigestSession(BOB)
    with pytest.raises(AuthFailed) as info:
        session.on_challenge(www_authenticate=values)
    assert info.value.reason is AuthFailureReason.NO_USABLE_CHALLENGE


def test_new_realm_every_time_is_capped() -> None:
    session = DigestSession(BOB, max_rounds=3)
    for i in range(3):
        assert session.on_challenge(www_authenticate=[www("n", realm=f"r{i}")]) is RetryReason.FIRST_CHALLENGE
        send(session)
    with pytest.raises(AuthFailed) as info:
        session.on_challenge(www_authenticate=[www("n", realm="r9")])
    assert info.value.reason is AuthFailureReason.MAX_ATTEMPTS
    session.on_success()
    assert session.on_challenge(www_authenticate=[www("m", realm="r0")]) is RetryReason.NEW_NONCE


def test_reset_forgets_everything() -> None:
    session = DigestSession(BOB)
    session.on_challenge(www_authenticate=[www("n1")])
    session.reset()
    assert session.realms == ()
    assert session.authorization_headers("INVITE", "sip:b@x") == []


def test_bad_session_limits() -> None:
    with pytest.raises(DigestError):
        DigestSession(BOB, max_attempts=0)
    with pytest.raises(DigestError):
        DigestSession(BOB, max_stale_retries=-1)
    with pytest.raises(DigestError):
        DigestSession(BOB, max_rounds=0)
