"""Reading digest challenges (gateway.sip.digest_challenge)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sip.digest_challenge import (
    PROXY_AUTH,
    WWW_AUTH,
    DigestAlgorithm,
    DigestChallenge,
    DigestError,
    DigestParseError,
    UnsupportedDigestAlgorithm,
    auth_headers_for_status,
    parse_auth_params,
    parse_challenges,
    select_challenges,
)

_quotable = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0"), max_size=30
)


def test_odd_but_valid_challenge() -> None:
    challenge = DigestChallenge.parse(
        'digest   REALM = "sip.carrier.example" ,\t Nonce=abc/def+123==,'
        'QOP="auth , AUTH-INT",Algorithm=sha-256 , STALE=TRUE, opaque="", '
        'domain="sip:carrier.example sip:backup.example", X-Ext="a\\\\b", charset=UTF-8'
    )
    assert challenge.realm == "sip.carrier.example"
    assert challenge.nonce == "abc/def+123=="
    assert challenge.qop == ("auth", "auth-int")
    assert challenge.algorithm is DigestAlgorithm.SHA256
    assert challenge.stale is True
    assert challenge.opaque == ""
    assert challenge.domain == ("sip:carrier.example", "sip:backup.example")
    assert challenge.charset == "UTF-8"
    assert ("x-ext", "a\\b") in challenge.params


def test_unquoted_qop_list_from_sloppy_servers() -> None:
    challenge = DigestChallenge.parse('Digest realm="r", qop=auth,auth-int, nonce="n", algorithm=MD5')
    assert challenge.qop == ("auth", "auth-int")
    assert challenge.nonce == "n"


def test_defaults() -> None:
    challenge = DigestChallenge.parse('Digest realm="r", nonce="n"')
    assert challenge.algorithm is DigestAlgorithm.MD5
    assert challenge.qop == () and challenge.opaque is None
    assert challenge.stale is False and challenge.userhash is False
    assert challenge.chosen_qop is None


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ('Digest realm="r", nonce="n", algorithm=SHA-1', UnsupportedDigestAlgorithm),
        ('Digest realm="r", nonce="n", algorithm=AKAv1-MD5', UnsupportedDigestAlgorithm),
        ('Digest realm="r"', DigestParseError),
        ('Digest nonce="n"', DigestParseError),
        ('Digest realm="r, nonce="n"', DigestParseError),
        ('Digest realm="r", realm="s", nonce="n"', DigestParseError),
        ('Basic realm="r"', DigestParseError),
        ('realm="r", nonce="n"', DigestParseError),
        ('Digest realm=, nonce="n"', DigestParseError),
        ('Digest ="r"', DigestParseError),
        ("", DigestParseError),
        ('Digest realm="a", nonce="1", Digest realm="b", nonce="2"', DigestParseError),
        ("Digest abcdef==", DigestParseError),
    ],
)
def test_bad_challenges(value: str, error: type[DigestError]) -> None:
    with pytest.raises(error) as info:
        DigestChallenge.parse(value)
    assert info.value.hangup_cause == "auth_failed"


def test_unsupported_algorithm_names_it() -> None:
    with pytest.raises(UnsupportedDigestAlgorithm) as info:
        DigestChallenge.parse('Digest realm="r", nonce="n", algorithm=SHA-1')
    assert info.value.algorithm == "SHA-1"


def test_algorithm_tokens() -> None:
    assert DigestAlgorithm.parse("md5-SESS") is DigestAlgorithm.MD5_SESS
    assert DigestAlgorithm.parse("SHA-512-256-sess").is_session
    assert (
        DigestAlgorithm.SHA512_256.strength > DigestAlgorithm.SHA256.strength > DigestAlgorithm.MD5.strength
    )
    assert all(algorithm.available for algorithm in DigestAlgorithm)


def test_several_challenges_in_one_value_and_other_schemes() -> None:
    value = (
        'Basic realm="carrier", Negotiate YIIB/mdf+ab==, '
        'Digest realm="carrier", nonce="n1", algorithm=MD5, qop="auth", '
        'Bearer realm="x", error="invalid_token", '
        'Digest realm="carrier", nonce="n2", algorithm=SHA-256, qop="auth"'
    )
    challenges = parse_challenges(value)
    assert [c.nonce for c in challenges] == ["n1", "n2"]
    assert parse_auth_params("Negotiate YIIB/mdf+ab==") == ("Negotiate", {})


def test_several_header_values_skip_unknown_algorithms() -> None:
    challenges = parse_challenges(
        [
            'Digest realm="a", nonce="1", algorithm=SHA-1',
            'Digest realm="a", nonce="2", algorithm=MD5',
            'Digest realm="b", nonce="3"',
        ]
    )
    assert [(c.realm, c.nonce) for c in challenges] == [("a", "2"), ("b", "3")]
    assert parse_challenges([]) == []
    assert parse_challenges('Basic realm="x"') == []
    with pytest.raises(UnsupportedDigestAlgorithm):
        parse_challenges('Digest realm="a", nonce="1", algorithm=SHA-1')


def test_select_strongest_per_realm() -> None:
    challenges = parse_challenges(
        [
            'Digest realm="carrier", nonce="1", algorithm=MD5, qop="auth"',
            'Digest realm="carrier", nonce="2", algorithm=SHA-256, qop="auth"',
            'Digest realm="proxy", nonce="3", algorithm=MD5',
            'Digest realm="proxy", nonce="4", algorithm=MD5-sess, qop="auth"',
            'Digest realm="other", nonce="5", algorithm=SHA-256, qop="auth-conf"',
        ]
    )
    strongest = select_challenges(challenges)
    assert list(strongest) == ["carrier", "proxy"]
    assert strongest["carrier"].nonce == "2"
    assert strongest["proxy"].nonce == "3"  # same strength: the earlier one wins
    topmost = select_challenges(challenges, policy="server_order")
    assert topmost["carrier"].nonce == "1"


def test_header_mapping() -> None:
    assert auth_headers_for_status(401) == WWW_AUTH == ("WWW-Authenticate", "Authorization")
    assert auth_headers_for_status(407) == PROXY_AUTH == ("Proxy-Authenticate", "Proxy-Authorization")
    assert PROXY_AUTH.authorization == "Proxy-Authorization"
    with pytest.raises(DigestError):
        auth_headers_for_status(403)


@given(realm=_quotable, nonce=_quotable.filter(bool), opaque=_quotable)
def test_quoted_values_round_trip(realm: str, nonce: str, opaque: str) -> None:
    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    challenge = DigestChallenge.parse(f"Digest realm={q(realm)}, nonce={q(nonce)}, opaque={q(opaque)}")
    assert (challenge.realm, challenge.nonce, challenge.opaque) == (realm, nonce, opaque)
