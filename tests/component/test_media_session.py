"""MediaSession end to end on loopback: audio both ways, source filtering, NAT learning,
DTMF, hold, media timeout, malformed input, RTCP. Real sockets and a running media clock on a
ShiftedClock: real time, which a test moves forward instead of sitting out a long wait (a
learn window, a timeout). Tests wait for what they need (packets, frames, ticks), never for a
fixed time."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import socket
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from media.clock import MediaClock
from media.dtmf import TelephoneEvent
from media.errors import RtpParseError
from media.negotiated import MediaDirection
from media.rtp import parse_header_fast, payload_end
from media.session import MediaConfig, MediaPortBusy, MediaSession
from tests.component.test_media_helpers import (
    LOOPBACK,
    Collector,
    RawPeer,
    RtpStream,
    TickCounter,
    ToneSource,
    band_energy,
    negotiated,
    open_session,
    peak_frequency,
)
from tests.support.clock import FakeClock, ShiftedClock, wait_until

CONFIG = MediaConfig(local_address=LOOPBACK, rtcp_interval=0.2, learn_window=0.4)


@pytest.fixture
def time_() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture
async def clock(time_: ShiftedClock) -> AsyncIterator[MediaClock]:
    c = MediaClock(clock=time_)
    c.start()
    yield c
    await c.stop()


@pytest.fixture
async def loop_errors() -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
    return errors


class Cleanup:
    def __init__(self, clock: MediaClock, time_: ShiftedClock) -> None:
        self.clock = clock
        self.time = time_  # the clock's and the sessions' time: advance() skips a wait
        self.sessions: list[MediaSession] = []
        self.peers: list[RawPeer] = []

    async def session(self, config: MediaConfig = CONFIG, **kw: Any) -> MediaSession:
        """A session on the running media clock, or (given its own ``clock``) ticked by the test."""
        own_clock = "clock" in kw
        kw.setdefault("clock", self.time)
        s = await open_session(config, **kw)
        self.sessions.append(s)
        if not own_clock:
            self.clock.add(s)
        return s

    async def peer(self, host: str = LOOPBACK) -> RawPeer:
        p = await RawPeer.open(host)
        self.peers.append(p)
        return p


@pytest.fixture
async def env(clock: MediaClock, time_: ShiftedClock) -> AsyncIterator[Cleanup]:
    c = Cleanup(clock, time_)
    yield c
    for s in c.sessions:
        clock.remove(s)
        await s.close()
    for p in c.peers:
        p.close()


# --------------------------------------------------------------------------- audio


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
async def test_tones_both_ways(env: Cleanup, codec: str, loop_errors: list[dict[str, Any]]) -> None:
    a = await env.session(call_id="a")
    b = await env.session(call_id="b")
    heard_by_a, heard_by_b = Collector(), Collector()
    a.add_sink(heard_by_a)
    b.add_sink(heard_by_b)
    a.set_source(ToneSource(1000.0))
    b.set_source(ToneSource(440.0))
    a.set_remote(negotiated(b.rtp_port, codec=codec))
    b.set_remote(negotiated(a.rtp_port, codec=codec))

    await wait_until(lambda: min(stat(a, "packets_in"), stat(b, "packets_in"), len(heard_by_a.frames)) > 45)

    assert peak_frequency(heard_by_b.samples(25)) == pytest.approx(1000.0, abs=8)
    assert peak_frequency(heard_by_a.samples(25)) == pytest.approx(440.0, abs=8)
    sa: dict[str, Any] = a.stats()
    sb: dict[str, Any] = b.stats()
    assert sa["codec"] == sb["codec"] == codec
    assert sa["packets_out"] > 40 and sb["packets_in"] > 40
    assert sb["dropped_foreign"] == 0 and sb["malformed"] == 0
    assert sb["remote_locked"] is True and sb["remote_source"] == f"{LOOPBACK}:{a.rtp_port}"
    # RTCP flows both ways and the SR/RR pair yields a round-trip time.
    await wait_until(lambda: stat(a, "rtt_ms") is not None and stat(b, "rtt_ms") is not None)
    assert sa["rtcp_out"] > 0 and sb["rtcp_in"] > 0
    assert stat(a, "remote_fraction_lost") == 0.0

    env.clock.remove(a)
    await a.close()
    await wait_until(lambda: stat(b, "rtcp_bye_in") == 1)
    assert loop_errors == []


async def test_observers_see_caller_and_played_aligned(env: Cleanup) -> None:
    a = await env.session()
    b = await env.session()
    tone = ToneSource(700.0)
    a.set_source(tone)
    seen: list[tuple[bytes, bytes, float]] = []

    class Observer:
        def on_frames(self, caller: bytes, played: bytes, now: float) -> None:
            seen.append((caller, played, now))

    a.add_observer(Observer())
    a.set_remote(negotiated(b.rtp_port))
    b.set_remote(negotiated(a.rtp_port))
    await wait_until(lambda: tone.frames >= 15)
    a.set_source(None)
    n = len(seen)
    await wait_until(lambda: len(seen) >= n + 5)
    assert all(len(c) == 320 and len(p) == 320 for c, p, _ in seen)
    assert [n for _, _, n in seen] == sorted(n for _, _, n in seen)
    played = [p for _, p, _ in seen]
    assert any(p != bytes(320) for p in played)
    assert played[-1] == bytes(320)  # no source: silence is what was sent
    assert sum(p != bytes(320) for p in played) == tone.frames


async def test_ipv6_loopback(env: Cleanup) -> None:
    # make test turns IPv6 on for loopback where it is off (scripts/install-system-deps.sh).
    config = dataclasses.replace(CONFIG, local_address="::1")
    a = await env.session(config)
    b = await env.session(config)
    heard = Collector()
    b.add_sink(heard)
    a.set_source(ToneSource(1000.0))
    a.set_remote(negotiated(b.rtp_port, remote_address="::1"))
    b.set_remote(negotiated(a.rtp_port, remote_address="0:0::1"))  # any spelling of the address
    await wait_until(lambda: stat(b, "packets_in") > 20)
    assert peak_frequency(heard.samples(10)) == pytest.approx(1000.0, abs=10)
    assert stat(b, "remote_locked") is True and stat(b, "dropped_foreign") == 0


async def test_null_address_hold_sends_nothing(env: Cleanup) -> None:
    listener = await env.peer()
    clock = FakeClock()
    b = await env.session(clock=clock)  # ticked here, on the fake clock
    source = ToneSource(500.0)
    b.set_source(source)
    # RFC 2543 hold: c=0.0.0.0. Sending there would reach this host, so nothing goes out.
    b.set_remote(negotiated(listener.port, remote_address="0.0.0.0", remote_hold=True))
    for i in range(25):  # 0.5 s: audio due every tick, RTCP (every 0.1-0.3 s) more than once
        clock.advance(0.02)
        b.tick(clock(), i)
    assert stat(b, "packets_out") == 0 and stat(b, "rtcp_out") == 0
    assert source.frames == 25  # drained all the same
    assert listener.received == []
    assert b.endpoint.rtp_destination is None and b.endpoint.rtcp_destination is None


# --------------------------------------------------------------------------- source filtering


async def test_injection_from_foreign_source_is_dropped(env: Cleanup) -> None:
    a = await env.session()
    b = await env.session()
    heard = Collector()
    b.add_sink(heard)
    a.set_source(ToneSource(1000.0))
    a.set_remote(negotiated(b.rtp_port))
    b.set_remote(negotiated(a.rtp_port))
    await wait_until(lambda: stat(b, "packets_in") > 5)

    attackers = [await env.peer(), await env.peer("127.0.0.2")]
    loud = ToneSource(3000.0, amplitude=30000.0)
    stream = RtpStream(pt=0)  # same PT, its own SSRC

    class Injector:
        sent = 0

        def tick(self, now: float, tick_index: int) -> None:
            from media.g711 import ulaw_encode

            pkt = stream.next(ulaw_encode(loud.next_frame() or b""))
            for attacker in attackers:
                attacker.send(pkt, (LOOPBACK, b.rtp_port))
                self.sent += 1

    injector = Injector()
    env.clock.add(injector)
    await wait_until(lambda: injector.sent >= 80 and len(heard.frames) >= 40)
    env.clock.remove(injector)
    await wait_until(lambda: stat(b, "dropped_foreign") == injector.sent)  # every injected packet seen

    samples = heard.samples(30)
    assert peak_frequency(samples) == pytest.approx(1000.0, abs=8)
    assert band_energy(samples, 3000.0) < 1e-4 * band_energy(samples, 1000.0)
    st: dict[str, Any] = b.stats()
    assert st["dropped_foreign"] == injector.sent > 0
    assert st["dropped_foreign_source"] == st["dropped_foreign"]
    assert st["remote_source"] == f"{LOOPBACK}:{a.rtp_port}"
    assert st["jitter_buffer"]["ssrc_changes"] == 0


async def test_nat_learning_rule(env: Cleanup) -> None:
    """Signalled X is silent, Y sends first: Y is learned after two packets in sequence
    and gets our RTP; X may still take over within learn_window; after that the lock
    is final and everyone else is dropped."""
    b = await env.session()
    x, y, z = await env.peer(), await env.peer(), await env.peer()
    b.set_remote(negotiated(x.port))
    await wait_until(lambda: len(x.received) >= 2)  # before any lock RTP goes to the signalled address
    from_y = RtpStream(pt=0)
    silence = bytes([0xFF]) * 160

    y.send(from_y.next(silence), (LOOPBACK, b.rtp_port))
    await wait_until(lambda: stat(b, "dropped_foreign") == 1)
    assert stat(b, "remote_source") is None  # one packet is not enough
    y.send(from_y.next(silence), (LOOPBACK, b.rtp_port))
    await wait_until(lambda: stat(b, "remote_source") == f"{LOOPBACK}:{y.port}")
    assert stat(b, "remote_locked") is False  # provisional
    n_y = len(y.received)
    await wait_until(lambda: len(y.received) > n_y + 2)  # our RTP now follows the learned source

    # The signalled address shows up within the window: it wins, for good.
    x.send(RtpStream(pt=0).next(silence), (LOOPBACK, b.rtp_port))
    await wait_until(lambda: stat(b, "remote_source") == f"{LOOPBACK}:{x.port}")
    assert stat(b, "remote_locked") is True
    dropped = stat(b, "dropped_foreign")
    y.send(from_y.next(silence), (LOOPBACK, b.rtp_port))
    await wait_until(lambda: stat(b, "dropped_foreign") == dropped + 1)

    # A new signalled address (re-INVITE) re-learns. Y is learned again, the window
    # passes, and the lock becomes final: now even the signalled Z is foreign.
    b.set_remote(negotiated(z.port))
    assert stat(b, "remote_source") is None
    y.send(from_y.next(silence), (LOOPBACK, b.rtp_port))
    y.send(from_y.next(silence), (LOOPBACK, b.rtp_port))
    await wait_until(lambda: stat(b, "remote_source") == f"{LOOPBACK}:{y.port}")
    assert stat(b, "remote_locked") is False
    env.time.advance(CONFIG.learn_window)  # the window passes
    assert stat(b, "remote_locked") is True
    dropped = stat(b, "dropped_foreign")
    packets_in = stat(b, "packets_in")
    z.send(RtpStream(pt=0).next(silence), (LOOPBACK, b.rtp_port))
    y.send(from_y.next(silence), (LOOPBACK, b.rtp_port))
    await wait_until(lambda: stat(b, "packets_in") == packets_in + 1)
    assert stat(b, "dropped_foreign") == dropped + 1
    # A wrong payload type from an unknown source never gets learned.
    b.set_remote(negotiated(x.port))
    w = RtpStream(pt=96)
    for _ in range(3):
        z.send(w.next(silence), (LOOPBACK, b.rtp_port))
    await wait_until(lambda: stat(b, "dropped_foreign") == dropped + 4)
    assert stat(b, "remote_source") is None


# --------------------------------------------------------------------------- DTMF


async def test_dtmf_rfc4733_end_to_end_and_on_the_wire(env: Cleanup) -> None:
    digits: list[tuple[str, int]] = []
    a = await env.session()
    b = await env.session(on_dtmf=lambda d, ms: digits.append((d, ms)))
    relay = await env.peer()
    a_addr, b_addr = (LOOPBACK, a.rtp_port), (LOOPBACK, b.rtp_port)

    def forward(data: bytes, addr: tuple[Any, ...]) -> None:
        relay.send(data, b_addr if addr[1] == a.rtp_port else a_addr)

    relay.forward = forward
    a.set_source(ToneSource(500.0))
    a.set_remote(negotiated(relay.port))
    b.set_remote(negotiated(relay.port))
    await wait_until(lambda: stat(b, "packets_in") > 5)
    a.send_dtmf("12#")
    with pytest.raises(ValueError):
        a.send_dtmf("1x")
    await wait_until(lambda: len(digits) == 3 and not a.dtmf_pending, timeout=3.0)
    # Retransmitted end packets and the receiver's timeout (0.3 s) must not repeat digits: let
    # the first arrive (a few packets more) and the second pass (the clock moves on).
    received = stat(b, "packets_in")
    env.time.advance(0.4)
    await wait_until(lambda: stat(b, "packets_in") >= received + 5)

    assert [d for d, _ in digits] == ["1", "2", "#"]
    assert all(80 <= ms <= 200 for _, ms in digits), digits
    assert stat(a, "dtmf_out") == 3 and stat(b, "dtmf_in") == 3

    wire = [(pt, seq, ts, ssrc, m, p) for pt, seq, ts, ssrc, m, p, _ in _from(relay, a.rtp_port)]
    assert {ssrc for *_, ssrc, _m, _p in wire} == {a.ssrc}
    seqs = [seq for _, seq, *_ in wire]
    assert all((s2 - s1) & 0xFFFF == 1 for s1, s2 in itertools.pairwise(seqs))
    events: dict[int, list[tuple[int, bool, TelephoneEvent]]] = {}
    for i, (pt, _seq, ts, _ssrc, marker, payload) in enumerate(wire):
        if pt == 101:
            events.setdefault(ts, []).append((i, marker, TelephoneEvent.parse(payload)))
    assert len(events) == 3
    assert list(events) == sorted(events)
    for (ts, pkts), code in zip(events.items(), (1, 2, 11), strict=True):
        idx = [i for i, _, _ in pkts]
        assert idx == list(range(idx[0], idx[-1] + 1)), "audio packets interleaved with an event"
        assert [m for _, m, _ in pkts] == [True] + [False] * (len(pkts) - 1)
        evs = [e for _, _, e in pkts]
        assert {e.event for e in evs} == {code}
        assert [e.end for e in evs] == [False] * (len(evs) - 3) + [True] * 3
        assert len({e.duration for e in evs[-3:]}) == 1 and evs[-1].duration == 800
        durations = [e.duration for e in evs]
        assert durations == sorted(durations)
    # One digit after another, nothing in between (the inter-digit gaps are silent),
    # and each event starts at the media timestamp of the tick it began on:
    # 12 ticks per digit = 5 tone + 2 extra end packets + 5 gap.
    all_idx = sorted(i for pkts in events.values() for i, _, _ in pkts)
    assert all_idx == list(range(all_idx[0], all_idx[-1] + 1))
    first_ts = next(iter(events))
    assert [(ts - first_ts) & 0xFFFFFFFF for ts in events] == [0, 12 * 160, 24 * 160]
    prev_audio = wire[all_idx[0] - 1]
    assert prev_audio[0] == 0 and (first_ts - prev_audio[2]) & 0xFFFFFFFF == 160
    # Audio resumes after the digits with the marker bit and a timestamp that kept running.
    last_event_idx = max(i for pkts in events.values() for i, _, _ in pkts)
    after = [w for w in wire[last_event_idx + 1 :] if w[0] == 0]
    assert after and after[0][4] is True


async def test_dtmf_inband_when_no_telephone_event(env: Cleanup) -> None:
    a = await env.session()
    b = await env.session()
    heard = Collector()
    b.add_sink(heard)
    a.set_remote(negotiated(b.rtp_port, telephone_event_pt=None))
    b.set_remote(negotiated(a.rtp_port, telephone_event_pt=None))
    await wait_until(lambda: stat(b, "packets_in") > 5)
    start = len(heard.frames)
    a.send_dtmf("1")
    await wait_until(lambda: not a.dtmf_pending)
    # The 100 ms tone (5 frames) has been heard, and the silence after it began.
    loud = lambda f: int(np.abs(np.frombuffer(f, dtype="<i2")).max()) > 4000  # noqa: E731
    await wait_until(lambda: sum(map(loud, heard.frames[start:])) >= 5 and not loud(heard.frames[-1]))
    samples = heard.samples(len(heard.frames) - start)
    tone = band_energy(samples, 697.0) + band_energy(samples, 1209.0)
    assert band_energy(samples, 697.0) > 0.2 * tone and band_energy(samples, 1209.0) > 0.2 * tone
    assert band_energy(samples, 941.0) + band_energy(samples, 1477.0) < 0.05 * tone
    assert stat(a, "dtmf_out") == 1


def stat(session: MediaSession, key: str) -> Any:
    return session.stats()[key]


def _from(peer: RawPeer, port: int) -> list[tuple[int, int, int, int, bool, bytes, float]]:
    keep = RawPeer()
    keep.received = [r for r in peer.received if r[1][1] == port]
    return keep.rtp()


# --------------------------------------------------------------------------- hold, timeout


async def test_media_timeout_fires_once(env: Cleanup) -> None:
    config = MediaConfig(local_address=LOOPBACK, media_timeout=0.3, hold_timeout=5.0)
    fired: list[float] = []
    a = await env.session(config)
    b = await env.session(config, on_media_timeout=lambda: fired.append(env.time()))
    ticks = TickCounter()
    b.add_observer(ticks)
    a.set_remote(negotiated(b.rtp_port))
    b.set_remote(negotiated(a.rtp_port))
    await wait_until(lambda: stat(b, "packets_in") >= 25)  # 0.5 s of media, more than the timeout
    assert fired == []  # media flowing: no timeout

    env.clock.remove(a)
    await a.close()
    silent_since = env.time()
    env.time.advance(0.3)
    await wait_until(lambda: len(fired) == 1, timeout=2.0)
    assert 0.3 <= fired[0] - silent_since <= 1.0
    env.time.advance(0.5)
    n = ticks.ticks
    await wait_until(lambda: ticks.ticks >= n + 5)
    assert len(fired) == 1
    assert stat(b, "media_timed_out") is True


async def test_hold_stops_sending_and_uses_hold_timeout(env: Cleanup) -> None:
    config = MediaConfig(local_address=LOOPBACK, media_timeout=0.3, hold_timeout=5.0)
    fired: list[float] = []
    a = await env.session(config)
    b = await env.session(config, on_media_timeout=lambda: fired.append(env.time()))
    a_heard = Collector()
    a.add_sink(a_heard)
    source = ToneSource(800.0)
    b.set_source(source)
    a.set_remote(negotiated(b.rtp_port))
    b.set_remote(negotiated(a.rtp_port))
    await wait_until(lambda: stat(a, "packets_in") > 5)

    # The far end (a) holds us with a=sendonly: b must not send to it.
    b.set_remote(negotiated(a.rtp_port, direction=MediaDirection.RECVONLY, remote_hold=True))
    at_hold = source.frames
    await wait_until(lambda: source.frames >= at_hold + 3)  # what b sent before the hold has arrived
    frames_before = source.frames
    received = stat(a, "packets_in")
    await wait_until(lambda: source.frames >= frames_before + 15)  # drained meanwhile, not piled up
    assert stat(a, "packets_in") == received
    assert stat(b, "on_hold") is True and stat(b, "sending") is False

    env.clock.remove(a)
    await a.close()
    env.time.advance(0.6)  # twice the media timeout passes without RTP
    n = source.frames
    await wait_until(lambda: source.frames >= n + 5)
    assert fired == []  # hold_timeout (5 s) applies, not media_timeout

    # Resume: a fresh media_timeout starts, and a is gone, so it fires.
    b.set_remote(negotiated(a.rtp_port))
    assert stat(b, "on_hold") is False
    env.time.advance(0.3)
    await wait_until(lambda: len(fired) == 1, timeout=2.0)


# --------------------------------------------------------------------------- robustness


async def test_malformed_packets_are_counted_never_raise(
    env: Cleanup, loop_errors: list[dict[str, Any]]
) -> None:
    b = await env.session()
    heard = Collector()
    b.add_sink(heard)
    peer = await env.peer()
    b.set_remote(negotiated(peer.port))
    stream = RtpStream(pt=0)
    dest = (LOOPBACK, b.rtp_port)
    for _ in range(3):
        peer.send(stream.next(bytes([0xFF]) * 160), dest)
    await wait_until(lambda: stat(b, "packets_in") == 3)
    assert stat(b, "remote_locked") is True

    rng = random.Random(1234)
    header = stream.next(b"\xff" * 160)
    crafted = [
        b"\x80",
        header[:5],
        header[:11],
        bytes([0x40]) + header[1:],  # version 1
        bytes([0x00]) + header[1:],  # version 0
        bytes([0xC0]) + header[1:],  # version 3
        bytes([0x8F]) + header[1:20],  # 15 CSRCs in a 20-byte packet
        bytes([0x90]) + header[1:12] + b"\x00\x00\xff\xff",  # extension longer than the packet
        bytes([0x90]) + header[1:12] + b"\x00",  # extension header truncated
        bytes([0xA0]) + header[1:12] + b"\xff" * 10 + b"\x00",  # padding count 0
        bytes([0xA0]) + header[1:12] + b"\xff" * 10 + b"\xff",  # padding longer than payload
        bytes([0xA0]) + header[1:12],  # padding bit, no payload
    ]
    randoms = [rng.randbytes(rng.randrange(0, 200)) for _ in range(300)]
    expected_malformed = sum(1 for d in crafted + randoms if not _parses(d))
    wrong_pt = [RtpStream(pt=96, ssrc=stream.ssrc).next(b"\x00" * 160) for _ in range(3)]
    bad_dtmf = [RtpStream(pt=101, ssrc=stream.ssrc).next(b"\x01\x0a") for _ in range(2)]
    before: dict[str, Any] = b.stats()
    assert before["unexpected_pt"] == 0 and before["dtmf_malformed"] == 0
    everything = crafted + randoms + wrong_pt + bad_dtmf

    def handled() -> int:
        st: dict[str, Any] = b.stats()
        return int(st["rtp_malformed"] + st["unexpected_pt"] + st["packets_in"] - before["packets_in"])

    for i in range(0, len(everything), 20):  # small bursts: loopback drops what overflows the socket buffer
        for d in everything[i : i + 20]:
            peer.send(d, dest)
        done = min(i + 20, len(everything))
        await wait_until(lambda: handled() == done)
    assert peer.sock is not None
    peer.sock.sendto(b"", dest)  # zero-length datagram
    await wait_until(lambda: handled() == len(everything) + 1)
    expected_malformed += 1
    # RTCP garbage from the peer's IP, and a valid RTCP from another IP.
    rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtcp.bind((LOOPBACK, 0))
    for junk in (b"\x81\xc9\x00\x07" + b"\x00" * 4, b"\x80\xc8\xff\xff", rng.randbytes(40), b"\x00"):
        rtcp.sendto(junk, (LOOPBACK, b.rtp_port + 1))
    rtcp.close()
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.3", 0))
    other.sendto(b"\x80\xc9\x00\x01\x00\x00\x00\x01", (LOOPBACK, b.rtp_port + 1))
    other.close()

    await wait_until(lambda: stat(b, "rtcp_malformed") == 4)
    after: dict[str, Any] = b.stats()
    valid_random = len(randoms) + len(crafted) + 1 - expected_malformed  # + the empty datagram
    assert after["rtp_malformed"] == expected_malformed
    assert after["unexpected_pt"] + (after["packets_in"] - before["packets_in"]) == valid_random + 5
    assert after["dtmf_malformed"] >= 2  # a random packet may parse as a short telephone-event
    assert after["dropped_foreign"] == before["dropped_foreign"] + 1
    assert after["malformed"] == expected_malformed + 4 + after["dtmf_malformed"]
    assert after["callback_errors"] == 0

    # Still working: a valid packet after the garbage is accepted.
    n = after["packets_in"]
    peer.send(RtpStream(pt=0).next(b"\xff" * 160), dest)
    await wait_until(lambda: stat(b, "packets_in") == n + 1)
    assert loop_errors == []


def _parses(data: bytes) -> bool:
    try:
        _pt, _seq, _ts, _ssrc, _m, offset = parse_header_fast(data)
        if data[0] & 0x20:
            payload_end(data, offset)
    except RtpParseError:
        return False
    return True


async def test_port_busy_and_nothing_left_bound() -> None:
    s = await open_session(CONFIG)
    try:
        clash = MediaSession(
            "x", s.rtp_port, CONFIG, on_dtmf=lambda d, ms: None, on_media_timeout=lambda: None
        )
        with pytest.raises(MediaPortBusy):
            await clash.open()
        # RTCP port taken: RTP (free) must not stay bound either.
        below = MediaSession(
            "y", s.rtp_port - 1, CONFIG, on_dtmf=lambda d, ms: None, on_media_timeout=lambda: None
        )
        with pytest.raises(MediaPortBusy):
            await below.open()
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((LOOPBACK, s.rtp_port - 1))
        probe.close()
    finally:
        await s.close()
    s2 = MediaSession("z", 0, CONFIG, on_dtmf=lambda d, ms: None, on_media_timeout=lambda: None)
    with pytest.raises(ValueError, match="unsupported codec"):
        s2.set_remote(dataclasses.replace(negotiated(4000), codec="G729", payload_type=18))
