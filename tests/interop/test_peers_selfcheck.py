"""Self-checks of the interop peers: every SIPp far-end scenario, Kamailio, baresip and
moto, each driven by a real caller (a SIPp UAC standing in for the gateway) so that a
failing gateway interop test points at the gateway, not at its peers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest

from tests.support.peers.audio import (
    RtpEndpoint,
    concat,
    dominant_frequencies,
    parse_rtp,
    read_wav,
    silence,
    tone,
    tone_power,
    ulaw_decode,
    ulaw_encode,
    write_ulaw,
    write_wav,
)
from tests.support.peers.baresip import Baresip
from tests.support.peers.kamailio import KamailioProxy
from tests.support.peers.s3 import MotoServer
from tests.support.peers.sipp import SippResult, SippUac, SippUas, parse_message_log

pytestmark = pytest.mark.interop

TRANSPORTS = ["udp", "tcp"]


def call(
    uas_scenario: str | None,
    uac_scenario: str,
    transport: str = "udp",
    *,
    uas: Mapping[str, object] | None = None,
    uac: Mapping[str, object] | None = None,
    timeout: float = 10.0,
) -> tuple[SippResult, SippResult]:
    """One call from a SIPp caller to a SIPp far end; both must end by themselves."""
    far = SippUas(uas_scenario, transport=transport, timeout=timeout, **dict(uas or {}))
    with far:
        caller = SippUac(uac_scenario, remote=far.address, transport=transport, timeout=timeout, **dict(uac or {}))
        with caller:
            caller_result = caller.wait()
        far_result = far.wait()
    return far_result, caller_result


def assert_ok(*results: SippResult) -> None:
    for r in results:
        assert r.ok, r.describe()


def flow(result: SippResult) -> list[str]:
    return [m.summary() for m in result.messages]


# --------------------------------------------------------------------------- SIPp far ends


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_answer_then_remote_bye(transport: str) -> None:
    far, caller = call("uas_answer_remote_bye", "selfcheck/uac_remote_bye", transport,
                       uas={"variables": {"pause_ms": 300}})
    assert_ok(far, caller)
    assert flow(far) == ["<- INVITE", "-> 100 (INVITE)", "-> 180 (INVITE)", "-> 200 (INVITE)",
                         "<- ACK", "-> BYE", "<- 200 (BYE)"]
    assert all(m.transport == transport.upper() for m in far.messages)

    invite = far.received("INVITE")[0]
    ok = far.sent(200, "INVITE")[0]
    assert "m=audio " in ok.body and "a=rtpmap:0 PCMU/8000" in ok.body and "c=IN IP4 127.0.0.1" in ok.body
    assert ok.header("Contact") is not None and f"transport={transport.upper()}" in (ok.header("Contact") or "")

    # The BYE goes to the caller's Contact, inside the dialog (tags swapped, same Call-ID).
    bye = far.sent("BYE")[0]
    caller_contact = (invite.header("Contact") or "").strip("<>")
    assert bye.request_uri == caller_contact
    assert bye.call_id == invite.call_id
    assert bye.header("To") == invite.header("From")
    assert (bye.header("From") or "").endswith(";tag=" + (ok.header("To") or "").split(";tag=")[1])

    # Counters from SIPp's own statistics agree with the trace.
    assert far.count("INVITE") == 1 and far.count("ACK") == 1 and far.count("BYE") == 1
    assert far.successful_calls == 1 and far.failed_calls == 0


def test_answer_then_caller_hangs_up() -> None:
    far, caller = call("uas_answer_wait_bye", "selfcheck/uac_local_bye", uac={"variables": {"pause_ms": 200}})
    assert_ok(far, caller)
    assert flow(far)[-2:] == ["<- BYE", "-> 200 (BYE)"]


def test_builtin_uas_answers() -> None:
    far, caller = call(None, "selfcheck/uac_local_bye", uac={"variables": {"pause_ms": 100}})
    assert_ok(far, caller)
    assert far.received("BYE") and far.sent(200, "BYE")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_busy(transport: str) -> None:
    far, caller = call("uas_busy", "selfcheck/uac_busy", transport)
    assert_ok(far, caller)
    assert flow(far) == ["<- INVITE", "-> 100 (INVITE)", "-> 486 (INVITE)", "<- ACK"]
    invite, ack = far.received("INVITE")[0], far.received("ACK")[0]
    # Hop-by-hop ACK of a failure: same branch and CSeq number as the INVITE.
    assert ack.header("Via") == invite.header("Via")
    assert (ack.header("CSeq") or "").split()[0] == (invite.header("CSeq") or "").split()[0]


def test_service_unavailable() -> None:
    far, caller = call("uas_503", "selfcheck/uac_503")
    assert_ok(far, caller)
    assert flow(far) == ["<- INVITE", "-> 503 (INVITE)", "<- ACK"]
    assert far.sent(503)[0].header("Retry-After") == "30"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ring_until_cancel(transport: str) -> None:
    far, caller = call("uas_ring_until_cancel", "selfcheck/uac_cancel", transport,
                       uac={"variables": {"pause_ms": 200}})
    assert_ok(far, caller)
    assert flow(far) == ["<- INVITE", "-> 100 (INVITE)", "-> 180 (INVITE)", "<- CANCEL",
                         "-> 200 (CANCEL)", "-> 487 (INVITE)", "<- ACK"]
    ringing, terminated = far.sent(180)[0], far.sent(487)[0]
    assert ringing.header("To") == terminated.header("To")


def test_early_media_then_answer() -> None:
    far, caller = call("uas_183_sdp_then_200", "selfcheck/uac_early_media",
                       uas={"variables": {"pause_ms": 300}}, uac={"variables": {"pause_ms": 100}})
    assert_ok(far, caller)
    progress = far.sent(183)[0]
    assert "m=audio" in progress.body
    t183, t200 = (caller.received(183)[0], caller.received(200, "INVITE")[0])
    assert t183.body == t200.body


def test_reinvite_hold() -> None:
    far, caller = call("uas_reinvite_hold", "selfcheck/uac_hold", uas={"variables": {"pause_ms": 200}})
    assert_ok(far, caller)
    assert flow(far)[5:] == ["-> INVITE", "<- 200 (INVITE)", "-> ACK", "-> BYE", "<- 200 (BYE)"]
    reinvite = far.sent("INVITE")[0]
    assert "a=sendonly" in reinvite.body
    assert "a=recvonly" in far.received(200, "INVITE")[0].body


def test_reinvite_hold_rejects_wrong_direction() -> None:
    """The hold scenario fails a caller that keeps answering sendrecv."""
    far, _caller = call("uas_reinvite_hold", "selfcheck/uac_hold", uas={"variables": {"pause_ms": 100}},
                        uac={"variables": {"answer_direction": "sendrecv"}}, timeout=3)
    assert far.exit_code == 1, far.describe()
    assert "a=sendrecv" in far.received(200, "INVITE")[0].body


def test_stream_plays_audio_file() -> None:
    audio = concat(tone(1000, 0.8), silence(0.2))
    with RtpEndpoint() as media:
        far, caller = call(
            "uas_answer_stream", "selfcheck/uac_local_bye_rtp",
            uas={"files": {"stream.ulaw": ulaw_encode(audio)}},
            uac={"variables": {"rtp_port": media.port, "pause_ms": 1200}},
        )
        assert_ok(far, caller)
        heard = media.pcm()
        sources = media.sources()
    assert len(heard) >= 8000 * 0.8
    assert dominant_frequencies(heard, 8000, 1)[0] == pytest.approx(1000, abs=10)
    assert media.payload_types() == {0: len(media.packets())}
    # RTP comes from SIPp's -mp port, the port in its SDP.
    ok = far.sent(200, "INVITE")[0]
    port = int(ok.body.split("m=audio ")[1].split()[0])
    assert sources == {("127.0.0.1", port)}


def test_pcap_dtmf_after_answer() -> None:
    with RtpEndpoint() as media:
        far, caller = call("uas_answer_pcap_dtmf", "selfcheck/uac_local_bye_rtp",
                           uac={"variables": {"rtp_port": media.port, "pause_ms": 800}})
        assert_ok(far, caller)
        events = [p for p in media.packets() if p.payload_type == 101]
    assert events, "no RFC 2833 packets arrived"
    assert {p.payload[0] for p in events} == {1}, "dtmf_2833_1.pcap carries digit 1"
    assert any(p.payload[1] & 0x80 for p in events), "no end-of-event packet"


def test_rtp_echo() -> None:
    with RtpEndpoint() as media:
        far = SippUas("uas_answer_wait_bye", rtp_echo=True, timeout=10)
        with far:
            caller = SippUac("selfcheck/uac_local_bye_rtp", remote=far.address, timeout=10,
                             variables={"rtp_port": media.port, "pause_ms": 1000})
            with caller:
                time.sleep(0.2)
                media.stream(("127.0.0.1", far.media_port), tone(700, 0.5))
                caller_result = caller.wait()
            far_result = far.wait()
        assert_ok(far_result, caller_result)
        assert media.wait_packets(20, timeout=2)
        echoed = media.pcm()
    assert dominant_frequencies(echoed, 8000, 1)[0] == pytest.approx(700, abs=10)


# --------------------------------------------------------------------------- Kamailio


@pytest.mark.parametrize(("caller_transport", "far_transport"), [("udp", "udp"), ("tcp", "tcp"), ("udp", "tcp")])
def test_kamailio_digest_then_relay(caller_transport: str, far_transport: str) -> None:
    far = SippUas("uas_answer_remote_bye", transport=far_transport, timeout=10, variables={"pause_ms": 200})
    with far:
        proxy = KamailioProxy(far.address, downstream_transport=far_transport, username="trunkuser",
                              password="trunk-secret", realm="sip.trunk.test")
        with proxy:
            caller = SippUac("selfcheck/uac_auth_remote_bye", remote=proxy.address, transport=caller_transport,
                             timeout=10, auth_user="trunkuser", auth_password="trunk-secret")
            with caller:
                caller_result = caller.wait()
            far_result = far.wait()
        log = proxy.log()
    assert_ok(far_result, caller_result)
    assert flow(caller_result)[:4] == ["-> INVITE", "<- 407 (INVITE)", "-> ACK", "-> INVITE"]
    challenge = caller_result.received(407)[0].header("Proxy-Authenticate") or ""
    assert 'realm="sip.trunk.test"' in challenge
    assert 'username="trunkuser"' in (caller_result.sent("INVITE")[1].header("Proxy-Authorization") or "")
    # Credentials are consumed, the proxy record-routes, and in-dialog requests follow the route.
    relayed = far_result.received("INVITE")[0]
    assert relayed.header("Proxy-Authorization") is None
    assert relayed.headers("Record-Route")
    assert far_result.sent("BYE")[0].header("Route")
    assert caller_result.sent("ACK")[-1].header("Route")
    assert "authenticated INVITE" in log


def test_kamailio_rejects_wrong_password() -> None:
    far = SippUas("uas_answer_remote_bye", timeout=2)
    with far:
        with KamailioProxy(far.address, username="trunkuser", password="right") as proxy:
            caller = SippUac("selfcheck/uac_auth_remote_bye", remote=proxy.address, timeout=2,
                             auth_user="trunkuser", auth_password="wrong")
            with caller:
                caller_result = caller.wait()
        far_result = far.wait()
    assert caller_result.exit_code != 0
    assert len(caller_result.received(407)) >= 2
    assert not far_result.received("INVITE"), "an unauthenticated INVITE reached the far end"


# --------------------------------------------------------------------------- baresip


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_baresip_answers_and_records(tmp_path: Path, transport: str) -> None:
    phone = Baresip(tmp_path / "phone", source_tone=440.0, source_seconds=30)
    with phone, RtpEndpoint(reply_pcm=tone(1000, 2.0)) as media:
        caller = SippUac("selfcheck/uac_local_bye_rtp", remote=phone.address, transport=transport,
                         service=phone.user, timeout=10, variables={"rtp_port": media.port, "pause_ms": 1200})
        with caller:
            result = caller.wait()
        diag = f"{result.describe()}\nbaresip events: {phone.event_types()}\n{phone.log()[-4000:]}"
        assert result.ok, diag
        phone.wait_event("CALL_CLOSED", timeout=5)
        from_phone = media.pcm()
        heard_path, sent_path = phone.recording("dec"), phone.recording("enc")
    assert "CALL_ESTABLISHED" in phone.event_types(), diag
    # What baresip sent: its source tone.
    assert len(from_phone) > 0.8 * 8000, diag
    assert dominant_frequencies(from_phone, 8000, 1)[0] == pytest.approx(440, abs=10), diag
    # What baresip heard, decoded and recorded: our 1000 Hz tone.
    assert {p.name for p in phone.recordings()} == {heard_path.name, sent_path.name}
    heard, rate = read_wav(heard_path)
    assert rate == 8000 and len(heard) > 0.8 * rate, diag
    assert tone_power(heard, rate, 1000) > 0.8, diag
    sent, rate = read_wav(sent_path)
    assert tone_power(sent, rate, 440) > 0.8, diag


# --------------------------------------------------------------------------- moto (S3)


def test_moto_put_and_presigned_get() -> None:
    with MotoServer() as s3:
        client = s3.client()
        client.create_bucket(Bucket="recordings")
        body = b"RIFF" + bytes(range(256)) * 4
        client.put_object(Bucket="recordings", Key="calls/c1/audio.wav", Body=body, ContentType="audio/wav")
        keys = [o["Key"] for o in client.list_objects_v2(Bucket="recordings")["Contents"]]
        url = client.generate_presigned_url(
            "get_object", Params={"Bucket": "recordings", "Key": "calls/c1/audio.wav"}, ExpiresIn=60
        )
        response = httpx.get(url, timeout=10)
    assert keys == ["calls/c1/audio.wav"]
    assert url.startswith(s3.endpoint_url + "/recordings/calls/c1/audio.wav?")
    assert response.status_code == 200
    assert response.content == body
    assert not s3.running


# --------------------------------------------------------------------------- helpers themselves


def test_message_log_parser() -> None:
    text = (
        "----------------------------------------------- 2026-01-01 10:00:00.000001\n"
        "UDP message received [10] bytes :\n\n"
        "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\nCSeq: 1 INVITE\r\n"
        "Content-Length: 3\r\n\r\nabc\n"
        "-----------------------------------------------\n"
        "Unexpected UDP message received:\n\nSIP/2.0 200 OK\r\n\r\n\n"
        "----------------------------------------------- 2026-01-01 10:00:00.000002\n"
        "TCP message sent (5 bytes):\n\n"
        "SIP/2.0 486 Busy Here\r\nv: SIP/2.0/TCP y\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n\n"
    )
    msgs = parse_message_log(text)
    assert [(m.direction, m.transport, m.summary()) for m in msgs] == [
        ("received", "UDP", "<- INVITE"),
        ("sent", "TCP", "-> 486 (INVITE)"),
    ]
    assert msgs[0].body == "abc" and msgs[0].request_uri == "sip:a@b"
    assert msgs[1].header("Via") == "SIP/2.0/TCP y" and msgs[1].status == 486


def test_audio_helpers(tmp_path: Path) -> None:
    pcm = tone([440, 1850], 0.5)
    assert sorted(dominant_frequencies(pcm, 8000, 2)) == pytest.approx([440, 1850], abs=5)
    assert tone_power(pcm, 8000, 440) == pytest.approx(0.5, abs=0.05)
    decoded = ulaw_decode(ulaw_encode(pcm))
    assert abs(int(decoded.astype(int).max()) - int(pcm.max())) < 600
    raw = write_ulaw(tmp_path / "t.ulaw", pcm)
    assert raw.stat().st_size == len(pcm)
    back, rate = read_wav(write_wav(tmp_path / "t.wav", pcm, 8000))
    assert rate == 8000 and (back == pcm).all()
    assert parse_rtp(b"\x00" * 12) is None
