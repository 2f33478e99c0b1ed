"""SipDialer and CallLeg driven by scripted user-agent events, with real RTP on loopback, a real
agent websocket where one is needed, and a clock the test moves by hand for the call-control
timers (trunk queue, calls per second, max_duration). Where a call's end is decided, and in
which order its pieces stop, is checked here below the SIPp interop runs."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.calls.dialer import SipDialer
from gateway.calls.leg import LegState
from gateway.config import AgentConfig, RtpConfig, SipConfig, TrunkConfig
from gateway.ids import new_call_id
from gateway.metrics import GatewayMetrics
from gateway.outcome import CallOutcome, CallStatus, HangupCause, HangupSide
from gateway.sip.useragent import Answered, Ended, Released, Ringing, Trying
from gateway.store.records import Call
from media.rtp import build_packet
from tests.component.test_media_helpers import negotiated
from tests.support.calls import FakeTimers, RecordingProgress, ScriptedSip
from tests.support.peers import free_port, free_udp_block


@dataclass
class Rig:
    dialer: SipDialer
    sip: ScriptedSip
    timers: FakeTimers
    progress: RecordingProgress

    def call(self, **kw: Any) -> Call:
        values: dict[str, Any] = dict(
            id=new_call_id(), account_id="acct", to="+14155552671", from_="+12025551234", agent_id=None,
            status=CallStatus.INITIATING, record=False, max_duration=3600, metadata={}, webhook_url=None,
            created_at=datetime.now(UTC), trunk_id="t",
        )
        values.update(kw)
        return Call(**values)

    async def dial(self, **kw: Any) -> Call:
        call = self.call(**kw)
        await self.dialer.dial(call)
        return call

    def leg_state(self, call: Call) -> LegState | None:
        leg = self.dialer._legs.get(call.id)
        return leg.state if leg is not None else None


async def quiet() -> None:
    """Let the legs' tasks run before checking that something did NOT happen. (A slow machine
    can only make such a check miss a wrong action, never fail a right one.)"""
    for _ in range(20):
        await asyncio.sleep(0)
    await asyncio.sleep(0.02)


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for a condition the legs reach on their own tasks (port binding, events)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def _rig(agents: list[AgentConfig] | None = None, rtp_ports: int = 20, **trunk: Any) -> AsyncIterator[Rig]:
    async def make() -> AsyncIterator[Rig]:
        first = free_udp_block(rtp_ports, align=2)
        sip = ScriptedSip()
        timers = FakeTimers()
        progress = RecordingProgress()
        dialer = SipDialer(
            sip=SipConfig(host="127.0.0.1", port=0),
            rtp=RtpConfig(port_min=first, port_max=first + rtp_ports - 1, media_timeout_seconds=30),
            trunks=[TrunkConfig(id="t", uri="sip:127.0.0.1:5999", **trunk)],
            agents=agents or [],
            progress=progress,
            recordings=None,
            metrics=GatewayMetrics(process_metrics=False),
            timers=timers,
            stack=sip,
        )
        sip.on_event = dialer.on_call_event
        await dialer.start()
        try:
            yield Rig(dialer, sip, timers, progress)
        finally:
            await dialer.stop()

    return make()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async for r in _rig(max_concurrent=2, calls_per_second=5, queue_size=10, queue_timeout_seconds=30):
        yield r


async def test_calls_go_out_at_the_trunks_rate_and_concurrency(rig: Rig) -> None:
    calls = [await rig.dial() for _ in range(4)]
    await until(lambda: len(rig.sip.placed) == 1)
    assert rig.sip.placed_ids() == [calls[0].id]  # one now, the next 1/5 s later
    rig.timers.advance(0.2)
    await until(lambda: len(rig.sip.placed) == 2)
    rig.timers.advance(5)
    await quiet()
    assert len(rig.sip.placed) == 2  # max_concurrent holds the other two
    assert [rig.leg_state(c) for c in calls] == [LegState.INVITING, LegState.INVITING, LegState.QUEUED, LegState.QUEUED]
    # The first call fails at the far end: its slot goes to the third.
    rig.sip.emit(calls[0].id, Ended(CallOutcome(CallStatus.BUSY, HangupCause.BUSY, HangupSide.REMOTE, 486, "Busy Here")))
    await until(lambda: len(rig.sip.placed) == 3)
    assert rig.sip.placed_ids()[2] == calls[2].id
    assert rig.progress.outcome(calls[0].id) == CallOutcome(CallStatus.BUSY, HangupCause.BUSY, HangupSide.REMOTE, 486, "Busy Here")
    rig.sip.emit(calls[0].id, Released())
    await until(lambda: rig.leg_state(calls[0]) is None)


async def test_a_queued_call_gives_up_after_the_queue_timeout(rig: Rig) -> None:
    calls = [await rig.dial() for _ in range(3)]
    await until(lambda: len(rig.sip.placed) == 1)
    rig.timers.advance(0.2)  # the rate's next slot
    await until(lambda: len(rig.sip.placed) == 2)
    rig.timers.advance(29)
    await quiet()
    assert rig.progress.outcome(calls[2].id) is None
    rig.timers.advance(1.5)
    ended = await rig.progress.wait_ended(calls[2].id)
    assert (ended.status, ended.cause, ended.side) == (CallStatus.FAILED, HangupCause.QUEUE_TIMEOUT, HangupSide.LOCAL)
    await until(lambda: rig.leg_state(calls[2]) is None)  # never placed: nothing to wait for
    assert calls[2].id not in rig.sip.placed_ids()


async def test_hangup_of_a_queued_call_cancels_it_without_a_word_on_the_wire(rig: Rig) -> None:
    calls = [await rig.dial() for _ in range(3)]
    await until(lambda: len(rig.sip.placed) == 1)
    rig.timers.advance(0.2)  # the rate's next slot
    await until(lambda: len(rig.sip.placed) == 2)
    assert await rig.dialer.hangup(calls[2].id, HangupCause.API_HANGUP)
    ended = await rig.progress.wait_ended(calls[2].id)
    assert (ended.status, ended.cause) == (CallStatus.CANCELLED, HangupCause.API_HANGUP)
    assert rig.sip.hangups == []
    # Its place in the queue is gone with it: a new call gets the next free slot.
    later = await rig.dial()
    rig.sip.emit(calls[0].id, Ended(CallOutcome(CallStatus.BUSY, HangupCause.BUSY, HangupSide.REMOTE, 486, None)))
    await rig.progress.wait_ended(calls[0].id)
    rig.timers.advance(0.2)  # the rate's next slot
    await until(lambda: later.id in rig.sip.placed_ids())


async def test_hangup_before_any_provisional_is_settled_at_once(rig: Rig) -> None:
    call = await rig.dial()
    await until(lambda: rig.leg_state(call) is LegState.INVITING)
    rig.sip.emit(call.id, Trying("sipcall-1"))
    assert await rig.dialer.hangup(call.id, HangupCause.API_HANGUP)
    ended = await rig.progress.wait_ended(call.id)
    # RFC 3261 9.1: no CANCEL yet, but the caller's intent is final.
    assert (ended.status, ended.cause, ended.side) == (CallStatus.CANCELLED, HangupCause.API_HANGUP, HangupSide.LOCAL)
    assert rig.sip.hangups == [(call.id, HangupCause.API_HANGUP)]  # the user agent cancels on its own later
    assert rig.progress.reports[-1].facts["sip_call_id"] == "sipcall-1"
    # What the user agent reports afterwards changes nothing.
    rig.sip.emit(call.id, Ended(CallOutcome(CallStatus.CANCELLED, HangupCause.API_HANGUP, HangupSide.LOCAL, 487, None)))
    rig.sip.emit(call.id, Released())
    await until(lambda: rig.leg_state(call) is None)
    assert rig.progress.kinds(call.id) == ["ended"]


async def test_hangup_while_ringing_waits_for_the_user_agents_outcome(rig: Rig) -> None:
    call = await rig.dial()
    await until(lambda: rig.leg_state(call) is LegState.INVITING)
    rig.sip.emit(call.id, Ringing(180, "Ringing", None))
    await rig.progress.wait_for(lambda: rig.progress.kinds(call.id) == ["ringing"])
    assert await rig.dialer.hangup(call.id, HangupCause.API_HANGUP)
    await until(lambda: rig.leg_state(call) is LegState.CANCELLING)
    assert rig.sip.hangups == [(call.id, HangupCause.API_HANGUP)]
    assert rig.progress.outcome(call.id) is None
    rig.sip.emit(call.id, Ended(CallOutcome(CallStatus.CANCELLED, HangupCause.API_HANGUP, HangupSide.LOCAL, 487, "Request Terminated")))
    ended = await rig.progress.wait_ended(call.id)
    assert (ended.status, ended.sip_status) == (CallStatus.CANCELLED, 487)


async def test_an_answered_call_carries_rtp_both_ways_and_ends_at_max_duration(rig: Rig) -> None:
    far = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    far.bind(("127.0.0.1", 0))
    far.setblocking(False)
    try:
        call = await rig.dial(max_duration=60)
        await until(lambda: len(rig.sip.placed) == 1)
        our_port = rig.sip.placed[0].local_media.rtp_port
        rig.sip.emit(call.id, Answered(negotiated(far.getsockname()[1]), 200))
        await rig.progress.wait_for(lambda: "answered" in rig.progress.kinds(call.id))
        # Far end -> gateway: a few packets; gateway -> far end: its media clock's frames.
        loop = asyncio.get_running_loop()
        for seq in range(10):
            far.sendto(build_packet(0, seq, seq * 160, 0x1234, b"\xff" * 160), ("127.0.0.1", our_port))
        packet = await asyncio.wait_for(loop.sock_recv(far, 2048), 5)
        assert packet[1] & 0x7F == 0 and len(packet) == 12 + 160  # PCMU, 20 ms
        rig.timers.advance(59)
        await quiet()
        assert rig.sip.hangups == []
        rig.timers.advance(1)
        await until(lambda: rig.sip.hangups == [(call.id, HangupCause.MAX_DURATION)])
        assert rig.leg_state(call) is LegState.HANGING_UP
        rig.sip.emit(call.id, Ended(CallOutcome(CallStatus.COMPLETED, HangupCause.MAX_DURATION, HangupSide.LOCAL, None, None)))
        ended = await rig.progress.wait_ended(call.id)
        assert (ended.status, ended.cause) == (CallStatus.COMPLETED, HangupCause.MAX_DURATION)
        facts = rig.progress.reports[-1].facts
        assert facts["sip_leg"] is None
        assert facts["media_stats"]["packets_in"] == 10 and facts["media_stats"]["packets_out"] >= 1
    finally:
        far.close()


async def test_an_unreachable_agent_ends_an_answered_call_failed() -> None:
    agent = AgentConfig(id="a", url=f"ws://127.0.0.1:{free_port()}/", connect_timeout_seconds=1, reconnect_attempts=0)
    async for rig in _rig(agents=[agent]):
        call = await rig.dial(agent_id="a")
        await until(lambda: len(rig.sip.placed) == 1)
        far = free_udp_block(2, align=2)
        rig.sip.emit(call.id, Answered(negotiated(far), 200))
        # The agent cannot be reached: the BYE goes out (no agent to give a grace period to).
        await until(lambda: rig.sip.hangups == [(call.id, HangupCause.AGENT_UNAVAILABLE)])
        rig.sip.emit(call.id, Ended(CallOutcome(CallStatus.COMPLETED, HangupCause.AGENT_UNAVAILABLE, HangupSide.LOCAL, None, None)))
        ended = await rig.progress.wait_ended(call.id)
        # The dialog closed normally, but the call did not do what it was for: failed.
        assert (ended.status, ended.cause) == (CallStatus.FAILED, HangupCause.AGENT_UNAVAILABLE)


async def test_no_free_rtp_port_fails_the_call_before_the_invite() -> None:
    async for rig in _rig(rtp_ports=2, max_concurrent=5, calls_per_second=1000):
        first = await rig.dial()
        await until(lambda: len(rig.sip.placed) == 1)
        second = await rig.dial()
        rig.timers.advance(0.01)
        ended = await rig.progress.wait_ended(second.id)
        assert (ended.status, ended.cause) == (CallStatus.FAILED, HangupCause.MEDIA_UNAVAILABLE)
        assert rig.sip.placed_ids() == [first.id]
