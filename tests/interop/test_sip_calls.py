"""Calls placed through the REST API to real SIP peers (SIPp far ends, a Kamailio proxy with digest).

Each test checks what a user sees (status, sip_status, hangup_cause) and what went over the wire
(SIPp's exit code and the messages it logged).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from tests.interop.conftest import gateway_config, running_gateway
from tests.support.peers.kamailio import KamailioProxy
from tests.support.peers.sipp import SippUac, SippUas

pytestmark = pytest.mark.interop
TRANSPORTS = ["udp", "tcp"]


def _trunk(uas: SippUas, **kw: object) -> dict[str, object]:
    return {"uri": f"sip:{uas.host}:{uas.port};transport={uas.transport}", **kw}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_answered_then_remote_bye(tmp_path: Path, transport: str) -> None:
    with SippUas("uas_answer_remote_bye", transport=transport, variables={"pause_ms": 1000}) as uas:
        async with running_gateway(gateway_config(tmp_path, _trunk(uas))) as gw:
            call = await gw.create()
            answered = await gw.wait_status(call["id"], "in_progress", "completed")
            done = await gw.wait_status(call["id"], "completed")
            result = await asyncio.to_thread(uas.wait, 15)
    assert result.ok, result.describe()
    assert answered["answered_at"] is not None
    assert done["hangup_cause"] == "remote_hangup" and done["hangup_side"] == "remote"
    assert done["answered_at"] and done["ended_at"] and isinstance(done["duration_seconds"], int)
    invite = result.received("INVITE")[0]
    # The record keeps the SIP Call-ID, written with the status changes, to match carrier logs.
    with sqlite3.connect(tmp_path / "gw.db") as db:
        (sip_call_id,) = db.execute("SELECT sip_call_id FROM calls WHERE id = ?", (call["id"],)).fetchone()
    assert sip_call_id == invite.call_id
    assert invite.request_uri == f"sip:+14155552671@127.0.0.1:{uas.port};transport={transport}"
    assert "timer" in (invite.header("Supported") or "")
    assert "m=audio" in invite.body and "PCMU" in invite.body and "telephone-event/8000" in invite.body
    assert result.received("ACK") and result.sent("BYE") and result.received(200, "BYE")


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_answered_then_api_hangup_sends_bye(tmp_path: Path, transport: str) -> None:
    with SippUas("uas_answer_wait_bye", transport=transport) as uas:
        async with running_gateway(gateway_config(tmp_path, _trunk(uas))) as gw:
            call = await gw.create()
            await gw.wait_status(call["id"], "in_progress")
            # While the call is up its record holds what ending it takes (for a node after a crash).
            live = await gw.gateway.store.get(call["id"])
            r = await gw.hangup(call["id"])
            assert r.status_code == 200, r.text
            assert r.json()["data"]["status"] == "completed"
            done = await gw.get(call["id"])
            ended = await gw.gateway.store.get(call["id"])
            result = await asyncio.to_thread(uas.wait, 15)
    assert result.ok, result.describe()
    assert (done["hangup_cause"], done["hangup_side"]) == ("api_hangup", "local")
    bye = result.received("BYE")[0]
    assert bye.call_id == result.received("INVITE")[0].call_id
    assert live.sip_leg is not None and live.sip_leg["phase"] == "confirmed"
    assert live.sip_leg["dialog"]["local_seq"] + 1 == int((bye.header("CSeq") or "").split()[0])
    assert live.sip_leg["transport"] == transport
    assert ended.sip_leg is None  # nothing left to end


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_busy(tmp_path: Path, transport: str) -> None:
    with SippUas("uas_busy", transport=transport) as uas:
        async with running_gateway(gateway_config(tmp_path, _trunk(uas))) as gw:
            call = await gw.create()
            done = await gw.wait_status(call["id"], "busy", "failed", "completed")
            result = await asyncio.to_thread(uas.wait, 15)
    assert result.ok, result.describe()
    assert (done["status"], done["sip_status"], done["hangup_cause"]) == ("busy", 486, "busy")
    assert done["sip_reason"] == "Busy Here"
    ack = result.received("ACK")[0]
    assert ack.header("Via") is not None


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_api_hangup_while_ringing_cancels(tmp_path: Path, transport: str) -> None:
    with SippUas("uas_ring_until_cancel", transport=transport) as uas:
        async with running_gateway(gateway_config(tmp_path, _trunk(uas))) as gw:
            call = await gw.create()
            await gw.wait_status(call["id"], "ringing")
            r = await gw.hangup(call["id"])
            assert r.json()["data"]["status"] == "cancelled", r.text
            done = await gw.get(call["id"])
            result = await asyncio.to_thread(uas.wait, 15)
    assert result.ok, result.describe()
    assert (done["status"], done["sip_status"], done["hangup_cause"]) == ("cancelled", 487, "api_hangup")
    cancel = result.received("CANCEL")[0]
    invite = result.received("INVITE")[0]
    assert cancel.header("CSeq").split()[0] == invite.header("CSeq").split()[0]
    assert cancel.header("Via") == invite.header("Via")
    assert cancel.request_uri == invite.request_uri
    assert result.received("ACK", "ACK")


async def test_ring_timeout_is_no_answer(tmp_path: Path) -> None:
    with SippUas("uas_ring_until_cancel") as uas:
        async with running_gateway(gateway_config(tmp_path, _trunk(uas, ring_timeout_seconds=1.0))) as gw:
            call = await gw.create()
            done = await gw.wait_status(call["id"], "no_answer", "failed", "cancelled", timeout=10)
            result = await asyncio.to_thread(uas.wait, 15)
    assert result.ok, result.describe()
    assert (done["status"], done["hangup_cause"], done["sip_status"]) == ("no_answer", "ring_timeout", 487)


async def test_503_fails_with_status(tmp_path: Path) -> None:
    with SippUas("uas_503") as uas:
        async with running_gateway(gateway_config(tmp_path, _trunk(uas))) as gw:
            call = await gw.create()
            done = await gw.wait_status(call["id"], "failed", "busy", "no_answer")
            result = await asyncio.to_thread(uas.wait, 15)
    assert result.ok, result.describe()
    assert (done["status"], done["sip_status"], done["hangup_cause"]) == ("failed", 503, "rejected")


async def test_early_media_183_then_answer(tmp_path: Path) -> None:
    with SippUas("uas_183_sdp_then_200", variables={"pause_ms": 1000}) as uas:
        async with running_gateway(gateway_config(tmp_path, _trunk(uas))) as gw:
            call = await gw.create()
            ringing = await gw.wait_status(call["id"], "ringing", "in_progress")
            assert ringing["status"] == "ringing"
            await gw.wait_status(call["id"], "in_progress")
            await gw.hangup(call["id"])
            done = await gw.get(call["id"])
            result = await asyncio.to_thread(uas.wait, 15)
    assert result.ok, result.describe()
    assert done["status"] == "completed" and done["ringing_at"] is not None


async def test_reinvite_hold_is_answered(tmp_path: Path) -> None:
    with SippUas("uas_reinvite_hold", variables={"pause_ms": 800}) as uas:
        async with running_gateway(gateway_config(tmp_path, _trunk(uas))) as gw:
            call = await gw.create()
            done = await gw.wait_status(call["id"], "completed", "failed", timeout=20)
            result = await asyncio.to_thread(uas.wait, 15)
    # The scenario itself fails unless our 200 to its sendonly offer says recvonly or inactive.
    assert result.ok, result.describe()
    assert done["status"] == "completed" and done["hangup_cause"] == "remote_hangup"
    answers = [m for m in result.received(200, "INVITE") if "m=audio" in m.body]
    assert answers and ("a=recvonly" in answers[-1].body or "a=inactive" in answers[-1].body)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_digest_auth_through_kamailio_with_record_route(tmp_path: Path, transport: str) -> None:
    with SippUas("uas_answer_wait_bye", transport=transport) as uas:
        proxy = KamailioProxy(uas.address, downstream_transport=transport)
        with proxy:
            trunk = {
                "uri": f"sip:{proxy.address};transport={transport}",
                "username": proxy.username,
                "password": proxy.password,
            }
            async with running_gateway(gateway_config(tmp_path, trunk)) as gw:
                call = await gw.create()
                await gw.wait_status(call["id"], "in_progress", timeout=15)
                r = await gw.hangup(call["id"])
                done = await gw.get(call["id"])
            result = await asyncio.to_thread(uas.wait, 15)
    assert r.json()["data"]["status"] == "completed", r.text
    assert result.ok, result.describe()
    assert done["hangup_cause"] == "api_hangup"
    invite = result.received("INVITE")[0]
    assert invite.header("Record-Route") is not None  # Kamailio stayed in the path
    bye = result.received("BYE")[0]
    assert bye.header("Via") and len(bye.headers("Via")) == 2  # the BYE came through the proxy


async def test_wrong_password_is_auth_failed(tmp_path: Path) -> None:
    with SippUas("uas_answer_wait_bye", timeout=8) as uas:
        with KamailioProxy(uas.address) as proxy:
            trunk = {"uri": f"sip:{proxy.address}", "username": proxy.username, "password": "wrong-password"}
            async with running_gateway(gateway_config(tmp_path, trunk)) as gw:
                call = await gw.create()
                done = await gw.wait_status(call["id"], "failed", timeout=15)
        uas.stop()
    assert (done["status"], done["hangup_cause"]) == ("failed", "auth_failed")
    assert done["sip_status"] in (401, 407, 403)


async def test_unreachable_trunk_over_udp_times_out(tmp_path: Path) -> None:
    from tests.support.peers import free_port

    trunk = {"uri": f"sip:127.0.0.1:{free_port()};transport=udp"}
    async with running_gateway(gateway_config(tmp_path, trunk)) as gw:  # T1=0.1 s: Timer B after 6.4 s
        call = await gw.create()
        done = await gw.wait_status(call["id"], "failed", timeout=15)
    assert (done["hangup_cause"], done["sip_status"]) == ("timeout", 408)


async def test_unreachable_trunk_over_tcp_is_transport_error(tmp_path: Path) -> None:
    from tests.support.peers import free_port

    trunk = {"uri": f"sip:127.0.0.1:{free_port()};transport=tcp"}
    async with running_gateway(gateway_config(tmp_path, trunk)) as gw:
        call = await gw.create()
        done = await gw.wait_status(call["id"], "failed", timeout=15)
    assert done["hangup_cause"] == "transport_error"


def _options(port: int, source: str, method: str = "OPTIONS") -> bytes | None:
    import socket

    body = (
        f"{method} sip:gw@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {source}:5099;branch=z9hG4bK-scan-{method.lower()}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:scanner@example.invalid>;tag=abc\r\nTo: <sip:gw@127.0.0.1>\r\n"
        f"Call-ID: probe-{method}@{source}\r\nCSeq: 1 {method}\r\nContact: <sip:scanner@{source}:5099>\r\n"
        "User-Agent: friendly-scanner\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(1.0)
        s.sendto(body, ("127.0.0.1", port))
        try:
            return s.recv(4096)
        except TimeoutError:
            return None


async def test_only_trunks_may_talk_to_us(tmp_path: Path) -> None:
    with SippUas("uas_busy") as uas:
        async with running_gateway(gateway_config(tmp_path, _trunk(uas))) as gw:
            port = gw.dialer.stack.udp_port
            stranger = [await asyncio.to_thread(_options, port, "127.0.0.2", m) for m in ("OPTIONS", "INVITE")]
            trunk = [await asyncio.to_thread(_options, port, "127.0.0.1", m) for m in ("OPTIONS", "INVITE")]
            listing = (await gw.http.get("/v1/voice/calls", headers={"X-API-Key": "dv_test_sk_interop_0123456789"})).json()
        uas.stop()
    assert stranger == [None, None]  # a scanner learns nothing
    assert trunk[0] is not None and trunk[0].startswith(b"SIP/2.0 200")
    assert trunk[1] is not None and trunk[1].startswith(b"SIP/2.0 403")
    assert listing["meta"]["pagination"]["total"] == 0  # nothing was created


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_invalid_requests_from_a_trunk_get_their_status(tmp_path: Path, transport: str) -> None:
    from tests.support.peers import free_port

    carrier_port = free_port()  # the trunk is SIPp's address: its requests come from a trusted source
    trunk = {"uri": f"sip:127.0.0.1:{carrier_port};transport={transport}"}
    async with running_gateway(gateway_config(tmp_path, trunk)) as gw:
        stack = gw.dialer.stack
        port = stack.tcp_port if transport == "tcp" else stack.udp_port
        carrier = SippUac(
            "uac_invalid_requests", remote=f"127.0.0.1:{port}", port=carrier_port, transport=transport, timeout=10
        )
        with carrier:
            result = await asyncio.to_thread(carrier.wait, 15)
    assert result.ok, result.describe()
    [bad_request] = result.received(400)
    assert bad_request.start_line == "SIP/2.0 400 Bad Request (invalid Max-Forwards 'seventy')"
    assert bad_request.call_id == result.sent("OPTIONS")[0].call_id and ";tag=" in (bad_request.header("To") or "")
    [version] = result.received(505)
    assert version.start_line == "SIP/2.0 505 Version Not Supported (unsupported SIP version 'SIP/3.0')"


async def test_trunk_queue_bound_answers_429(tmp_path: Path) -> None:
    with SippUas("uas_answer_wait_bye", calls=2, timeout=20) as uas:
        trunk = _trunk(uas) | {"max_concurrent": 1, "calls_per_second": 1, "queue_size": 1}
        async with running_gateway(gateway_config(tmp_path, trunk)) as gw:
            first = await gw.create()
            await gw.wait_status(first["id"], "in_progress")
            second = await gw.create()  # waits in the trunk's queue
            r = await gw.http.post(
                "/v1/voice/calls", json={"to": "+14155552671"}, headers={"X-API-Key": "dv_test_sk_interop_0123456789"}
            )
            assert (await gw.get(second["id"]))["status"] == "initiating"
            await gw.hangup(first["id"])
            await gw.wait_status(second["id"], "in_progress")  # dialled in order once a slot freed
            await gw.hangup(second["id"])
        result = await asyncio.to_thread(uas.wait, 15)
    assert r.status_code == 429 and r.json()["error"]["code"] == "RATE_LIMIT_EXCEEDED"
    assert int(r.headers["Retry-After"]) >= 1
    assert result.ok, result.describe()


async def test_trunk_slot_comes_back_when_the_call_ends(tmp_path: Path) -> None:
    # The far end hangs up. Our server transaction for its BYE lingers 64*T1 (32 s) to
    # absorb retransmissions, but the call is over: the next call must not wait for that.
    with SippUas("uas_answer_remote_bye", calls=2, timeout=30, variables={"pause_ms": 500}) as uas:
        trunk = _trunk(uas) | {"max_concurrent": 1, "calls_per_second": 1, "queue_size": 1}
        config = gateway_config(tmp_path, trunk)
        config["sip"]["t1"] = 0.5  # RFC 3261's default: the linger is 32 s
        async with running_gateway(config) as gw:
            first = await gw.create()
            await gw.wait_status(first["id"], "in_progress")
            second = await gw.create()  # waits for the trunk's only slot
            assert (await gw.get(second["id"]))["status"] == "initiating"
            await gw.wait_status(first["id"], "completed")
            done = await gw.wait_status(second["id"], "completed", timeout=10)
        result = await asyncio.to_thread(uas.wait, 15)
    assert result.ok, result.describe()
    assert done["hangup_cause"] == "remote_hangup"
    assert len(result.received("INVITE")) == 2
