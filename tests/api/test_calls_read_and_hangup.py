"""GET one call, hang up, auth, account isolation, error envelopes for routes."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from gateway.outcome import CallOutcome, CallStatus, HangupCause, HangupSide
from tests.conftest import KEY_A, KEY_B, ApiClient

FULL_FIELDS = {
    "id", "to", "from", "agent_id", "status", "record", "recording_url", "duration_seconds", "metadata",
    "created_at", "answered_at", "ended_at", "hangup_cause", "sip_status", "agent_summary",
}


async def _new_call(api: ApiClient, **body: object) -> str:
    r = await api.create(**body)
    assert r.status_code == 201, r.text
    return str(r.json()["data"]["id"])


async def test_get_call_has_every_field(api: ApiClient) -> None:
    call_id = await _new_call(api, agent_id="agt_abc123", record=True, metadata={"campaign": "retention"})
    r = await api.get(f"/v1/voice/calls/{call_id}")
    assert r.status_code == 200
    data = r.json()["data"]
    assert FULL_FIELDS <= set(data)
    assert data["metadata"] == {"campaign": "retention"}
    assert data["agent_summary"] is None
    assert data["recording_url"] is None
    assert data["recording_status"] == "pending"


async def test_another_accounts_call_is_404_like_a_missing_one(api: ApiClient) -> None:
    call_id = await _new_call(api)
    theirs = await api.get(f"/v1/voice/calls/{call_id}", key=KEY_B)
    missing = await api.get("/v1/voice/calls/call_000000000000000000000000", key=KEY_B)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "NOT_FOUND"
    assert theirs.json()["error"]["message"].replace(call_id, "X") == missing.json()["error"]["message"].replace(
        "call_000000000000000000000000", "X"
    )
    hang = await api.post(f"/v1/voice/calls/{call_id}/hangup", key=KEY_B)
    assert hang.status_code == 404
    listing = await api.get("/v1/voice/calls", key=KEY_B)
    assert listing.json()["data"] == []
    assert listing.json()["meta"]["pagination"]["total"] == 0


async def test_missing_and_wrong_key_get_the_same_401(api: ApiClient) -> None:
    responses = [
        await api.get("/v1/voice/calls", key=None),
        await api.get("/v1/voice/calls", key="dv_live_sk_wrong_wrong_wrong"),
        await api.get("/v1/voice/calls", key=""),
        await api.post("/v1/voice/calls", key=None, json={"to": "+14155552671"}),
        await api.post("/v1/voice/calls", key="nope", content=b"{not json"),
    ]
    bodies = []
    for r in responses:
        assert r.status_code == 401, r.text
        err = r.json()["error"]
        bodies.append((err["code"], err["message"], err["status"]))
        assert r.headers["X-Request-Id"] == r.json()["meta"]["request_id"]
    assert len(set(bodies)) == 1
    assert bodies[0][0] == "UNAUTHORIZED"


async def test_hashed_key_authenticates(api: ApiClient) -> None:
    r = await api.get("/v1/voice/calls", key=KEY_B)
    assert r.status_code == 200


async def test_keys_are_only_held_as_hashes(api: ApiClient) -> None:
    entries = api.gateway.keyring._entries
    digests = {d for d, _ in entries}
    assert hashlib.sha256(KEY_A.encode()).digest() in digests
    assert all(KEY_A.encode() not in d for d in digests)


async def test_hangup_initiating_call_cancels_it(api: ApiClient) -> None:
    call_id = await _new_call(api)
    r = await api.post(f"/v1/voice/calls/{call_id}/hangup")
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert set(data) == {"id", "status", "ended_at", "duration_seconds"}
    assert data["id"] == call_id
    assert data["status"] == "cancelled"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", data["ended_at"])
    assert api.backend.hangups == [(call_id, HangupCause.API_HANGUP)]
    full = (await api.get(f"/v1/voice/calls/{call_id}")).json()["data"]
    # Whole seconds from created_at to ended_at, as shown (0 unless a second boundary fell between).
    created, ended = (datetime.fromisoformat(full[k].replace("Z", "+00:00")) for k in ("created_at", "ended_at"))
    assert data["duration_seconds"] == int((ended - created).total_seconds()) <= 1
    assert full["hangup_cause"] == "api_hangup"
    assert full["hangup_side"] == "local"


async def test_hangup_answered_call_completes_it(api: ApiClient) -> None:
    call_id = await _new_call(api)
    await api.backend.ring(call_id)
    assert (await api.get(f"/v1/voice/calls/{call_id}")).json()["data"]["status"] == "ringing"
    await api.backend.answer(call_id)
    live = (await api.get(f"/v1/voice/calls/{call_id}")).json()["data"]
    assert live["status"] == "in_progress"
    assert live["answered_at"] is not None
    assert live["duration_seconds"] is None
    r = await api.post(f"/v1/voice/calls/{call_id}/hangup")
    assert r.json()["data"]["status"] == "completed"
    assert isinstance(r.json()["data"]["duration_seconds"], int)


async def test_hangup_of_ended_call_is_409(api: ApiClient) -> None:
    call_id = await _new_call(api)
    await api.backend.end(call_id, CallOutcome(CallStatus.BUSY, HangupCause.BUSY, HangupSide.REMOTE, 486, "Busy Here"))
    r = await api.post(f"/v1/voice/calls/{call_id}/hangup")
    assert r.status_code == 409
    err = r.json()["error"]
    assert err["code"] == "CALL_ALREADY_ENDED"
    assert err["details"] == {"status": "busy"}
    data = (await api.get(f"/v1/voice/calls/{call_id}")).json()["data"]
    assert (data["status"], data["sip_status"], data["hangup_cause"], data["hangup_side"]) == (
        "busy", 486, "busy", "remote")
    assert data["sip_reason"] == "Busy Here"


async def test_terminal_status_never_changes(api: ApiClient) -> None:
    call_id = await _new_call(api)
    await api.post(f"/v1/voice/calls/{call_id}/hangup")
    await api.backend.answer(call_id)  # a late 200 OK must not revive a cancelled call
    await api.backend.end(call_id, CallOutcome(CallStatus.FAILED, HangupCause.TIMEOUT))
    data = (await api.get(f"/v1/voice/calls/{call_id}")).json()["data"]
    assert data["status"] == "cancelled"
    assert data["answered_at"] is None


async def test_every_transition_emits_an_event_in_order(api: ApiClient) -> None:
    call_id = await _new_call(api, webhook_url="https://93.184.215.14/hooks")
    await api.backend.ring(call_id)
    await api.backend.answer(call_id)
    await api.post(f"/v1/voice/calls/{call_id}/hangup")
    events = await api.gateway.store.events(call_id)
    assert [(e.seq, e.type) for e in events] == [
        (1, "call.initiated"), (2, "call.ringing"), (3, "call.answered"), (4, "call.completed")]
    assert [e.payload["data"]["status"] for e in events] == ["initiating", "ringing", "in_progress", "completed"]
    assert all(re.fullmatch(r"evt_[0-9a-f]{24}", e.id) for e in events)


async def test_unknown_route_and_method(api: ApiClient) -> None:
    r = await api.get("/v1/voice/nothing")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "NOT_FOUND"
    assert "detail" not in r.json()
    r = await api.http.delete("/v1/voice/calls", headers={"X-API-Key": KEY_A})
    assert r.status_code == 405
    assert r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_health(api: ApiClient) -> None:
    assert (await api.http.get("/healthz")).json() == {"status": "ok"}
    r = await api.http.get("/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ready"}
