from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.dtmf import (
    EVENT_CHARS,
    DtmfDigit,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    digit_for_event,
    event_for_digit,
)
from media.errors import DtmfParseError
from media.rtp import RtpPacket, RtpSender
from tests.unit.media.pcap_util import SIPP_PCAP_DIR, read_udp

CAPTURE_NAMES = {**{str(d): str(d) for d in range(10)}, "pound": "#", "star": "*"}


def test_payload_parse_and_serialize() -> None:
    ev = TelephoneEvent.parse(bytes.fromhex("018a08c0"))
    assert ev == TelephoneEvent(event=1, end=True, volume=10, duration=2240)
    assert ev.digit == "1"
    assert ev.serialize() == bytes.fromhex("018a08c0")
    r = TelephoneEvent.parse(bytes.fromhex("0bff ffff"))
    assert (r.event, r.end, r.reserved, r.volume, r.duration) == (11, True, True, 63, 65535)
    assert r.serialize() == bytes.fromhex("0bffffff")
    assert TelephoneEvent.parse(bytes.fromhex("05 0a 00a0 0000")).duration == 160  # trailing octets ignored


@pytest.mark.parametrize("data", [b"", b"\x01", b"\x01\x0a\x00"])
def test_short_payload_is_typed_error(data: bytes) -> None:
    with pytest.raises(DtmfParseError):
        TelephoneEvent.parse(data)
    with pytest.raises(DtmfParseError):
        TelephoneEvent.parse(123)  # type: ignore[arg-type]


@given(st.binary(max_size=8))
def test_fuzz_payload(data: bytes) -> None:
    try:
        ev = TelephoneEvent.parse(data)
    except DtmfParseError:
        assert len(data) < 4
    else:
        assert ev.serialize() == data[:4]


def test_serialize_validates() -> None:
    for bad in (TelephoneEvent(256), TelephoneEvent(1, volume=64), TelephoneEvent(1, duration=65536)):
        with pytest.raises(ValueError):
            bad.serialize()


def test_event_mapping() -> None:
    assert [digit_for_event(i) for i in range(16)] == list(EVENT_CHARS)
    assert digit_for_event(16) is None and digit_for_event(-1) is None
    assert event_for_digit("*") == 10 and event_for_digit("#") == 11
    assert event_for_digit("a") == 12 and event_for_digit("D") == 15
    for bad in ("E", "", "12", " "):
        with pytest.raises(ValueError):
            event_for_digit(bad)


# --------------------------------------------------------------------------- captures


def _decode_capture(path: Path) -> tuple[list[DtmfDigit], list[TelephoneEvent]]:
    rx = DtmfReceiver()
    digits: list[DtmfDigit] = []
    events: list[TelephoneEvent] = []
    last = 0.0
    for dgram in read_udp(path):
        pkt = RtpPacket.parse(dgram.payload)
        assert pkt.payload_type == 101
        events.append(TelephoneEvent.parse(pkt.payload))
        digits += rx.feed(pkt.timestamp, pkt.marker, pkt.payload, pkt.sequence_number, dgram.time)
        last = dgram.time
    digits += rx.on_timer(last + 5.0)
    return digits, events


def test_all_sipp_captures_are_present() -> None:
    found = sorted(p.name for p in SIPP_PCAP_DIR.glob("dtmf_2833_*.pcap"))
    assert found == sorted(f"dtmf_2833_{name}.pcap" for name in CAPTURE_NAMES)


@pytest.mark.parametrize("name, digit", sorted(CAPTURE_NAMES.items()))
def test_decode_sipp_capture(name: str, digit: str) -> None:
    digits, events = _decode_capture(SIPP_PCAP_DIR / f"dtmf_2833_{name}.pcap")
    assert [d.digit for d in digits] == [digit]
    (d,) = digits
    assert d.ended is True
    assert sum(e.end for e in events) == 3  # the capture retransmits its end packet three times
    assert d.duration_samples == max(e.duration for e in events) == 2240
    assert d.duration_ms == pytest.approx(280.0)
    assert d.volume == 10


def test_capture_with_all_end_packets_lost_reported_once_on_timer() -> None:
    rx = DtmfReceiver(timeout=0.3)
    pkts = [RtpPacket.parse(g.payload) for g in read_udp(SIPP_PCAP_DIR / "dtmf_2833_star.pcap")]
    t = 0.0
    for p in pkts:
        if TelephoneEvent.parse(p.payload).end:
            continue
        assert rx.feed(p.timestamp, p.marker, p.payload, p.sequence_number, t) == []
        t += 0.02
    assert rx.in_progress
    assert rx.on_timer(t + 0.1) == []
    (d,) = rx.on_timer(t + 0.35)
    assert d.digit == "*" and d.ended is False and d.duration_samples == 1920
    assert rx.on_timer(t + 10) == []


# --------------------------------------------------------------------------- receiver


def _ev(event: int, duration: int, end: bool = False) -> bytes:
    return TelephoneEvent(event, end, 10, duration).serialize()


def test_new_event_flushes_digit_whose_end_was_lost() -> None:
    rx = DtmfReceiver()
    assert rx.feed(1000, True, _ev(5, 160), 1, 0.0) == []
    assert rx.feed(1000, False, _ev(5, 320), 2, 0.02) == []
    out = rx.feed(3000, True, _ev(6, 160), 3, 0.3)
    assert [(d.digit, d.ended, d.duration_samples) for d in out] == [("5", False, 320)]
    out = rx.feed(3000, False, _ev(6, 800, end=True), 4, 0.4)
    assert [(d.digit, d.ended, d.duration_ms) for d in out] == [("6", True, 100.0)]
    # late retransmissions of both events are ignored
    assert rx.feed(3000, False, _ev(6, 800, end=True), 5, 0.41) == []
    assert rx.feed(1000, False, _ev(5, 480, end=True), 6, 0.42) == []
    assert rx.duplicates == 2


def test_end_only_event_and_reordered_updates() -> None:
    rx = DtmfReceiver()
    (d,) = rx.feed(5000, False, _ev(11, 640, end=True), 10, 0.0)
    assert d.digit == "#" and d.ended and d.duration_samples == 640
    assert rx.feed(5000, True, _ev(11, 160), 8, 0.01) == []  # straggler of a finished event
    rx2 = DtmfReceiver()
    rx2.feed(100, True, _ev(1, 160), 1, 0.0)
    rx2.feed(100, False, _ev(1, 480), 3, 0.05)
    rx2.feed(100, False, _ev(1, 320), 2, 0.06)  # reordered: duration never shrinks
    (d2,) = rx2.on_timer(1.0)
    assert d2.duration_samples == 480


def test_straggler_from_older_event_is_not_a_new_digit() -> None:
    rx = DtmfReceiver()
    rx.feed(8000, True, _ev(2, 160), 20, 0.0)
    assert rx.feed(7000, False, _ev(9, 320), 15, 0.01) == []  # older timestamp than current event
    assert rx.stale == 1
    (d,) = rx.feed(8000, False, _ev(2, 400, end=True), 21, 0.05)
    assert d.digit == "2"


def test_timestamp_restart_far_back_is_a_new_event() -> None:
    rx = DtmfReceiver()
    rx.feed(10_000_000, True, _ev(3, 800, end=True), 1, 0.0)
    (d,) = rx.feed(500, True, _ev(4, 800, end=True), 2, 1.0)
    assert d.digit == "4"


def test_same_timestamp_other_event_is_treated_as_new() -> None:
    rx = DtmfReceiver()
    rx.feed(100, True, _ev(1, 160), 1, 0.0)
    out = rx.feed(100, False, _ev(2, 320), 2, 0.02)
    assert [(d.digit, d.ended) for d in out] == [("1", False)]
    (d,) = rx.feed(100, False, _ev(2, 480, end=True), 3, 0.04)
    assert (d.digit, d.ended, d.duration_samples) == ("2", True, 480)
    assert rx.on_timer(5.0) == []


def test_long_event_segments_are_joined() -> None:
    rx = DtmfReceiver()
    ts = 1000
    assert rx.feed(ts, True, _ev(0, 160), 1, 0.0) == []
    rx.feed(ts, False, _ev(0, 0xFFFF), 2, 8.0)
    # next segment: timestamp advanced by the previous segment's duration, no marker
    assert rx.feed(ts + 0xFFFF, False, _ev(0, 1600), 3, 8.2) == []
    (d,) = rx.feed(ts + 0xFFFF, False, _ev(0, 4000, end=True), 4, 8.5)
    assert d.digit == "0" and d.duration_samples == 0xFFFF + 4000 and d.timestamp == ts
    assert rx.feed(ts + 0xFFFF, False, _ev(0, 4000, end=True), 5, 8.52) == []


def test_malformed_payload_is_counted_not_raised() -> None:
    rx = DtmfReceiver()
    assert rx.feed(1, True, b"\x01", 1, 0.0) == []
    assert rx.malformed == 1


def test_non_dtmf_event_reported_with_none_digit() -> None:
    rx = DtmfReceiver()
    (d,) = rx.feed(1, True, _ev(70, 800, end=True), 1, 0.0)
    assert d.digit is None and d.event == 70


def test_reset_forgets_pending_event() -> None:
    rx = DtmfReceiver()
    rx.feed(1, True, _ev(7, 160), 1, 0.0)
    rx.reset()
    assert not rx.in_progress and rx.on_timer(10.0) == []


def test_timestamp_wrap() -> None:
    rx = DtmfReceiver()
    (a,) = rx.feed(0xFFFFFF00, True, _ev(1, 800, end=True), 1, 0.0)
    (b,) = rx.feed(0x00000200, True, _ev(2, 800, end=True), 2, 0.3)
    assert (a.digit, b.digit) == ("1", "2")


# --------------------------------------------------------------------------- sender


def test_sender_packet_schedule() -> None:
    tx = DtmfSender("1#", tone_ms=100, gap_ms=60)
    ticks: list[tuple[bytes, bool, int] | None] = []
    while not tx.done:
        ticks.append(tx.next_payload())
    assert tx.next_payload() is None
    assert len(ticks) == tx.total_ticks == 2 * (5 + 2 + 3)
    first = ticks[:10]
    sent = [t for t in first if t is not None]
    assert len(sent) == 7 and first[7:] == [None, None, None]
    evs = [TelephoneEvent.parse(p) for p, _m, _o in sent]
    assert [e.event for e in evs] == [1] * 7
    assert [e.duration for e in evs] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in evs] == [False] * 4 + [True] * 3
    assert [m for _p, m, _o in sent] == [True] + [False] * 6
    assert {o for _p, _m, o in sent} == {0}
    second = [t for t in ticks[10:] if t is not None]
    assert {o for _p, _m, o in second} == {10 * 160}
    assert TelephoneEvent.parse(second[0][0]).event == 11 and second[0][1]


def test_sender_validation() -> None:
    with pytest.raises(ValueError):
        DtmfSender("12x")
    with pytest.raises(ValueError):
        DtmfSender("1", volume=64)
    with pytest.raises(ValueError):
        DtmfSender("1", tone_ms=10_000)
    assert DtmfSender("").done


def test_sender_to_receiver_over_rtp() -> None:
    digits = "0123456789*#ABCD"
    tx = DtmfSender(digits, tone_ms=80, gap_ms=40)
    rtp = RtpSender(0, ssrc=5, sequence_number=65500, timestamp=0xFFFF0000)
    base_ts = rtp.timestamp
    rx = DtmfReceiver()
    got: list[DtmfDigit] = []
    now = 0.0
    while not tx.done:
        item = tx.next_payload()
        if item is not None:
            payload, marker, offset = item
            wire = rtp.next_packet_at(payload, 101, (base_ts + offset) & 0xFFFFFFFF, marker)
            pkt = RtpPacket.parse(wire)
            got += rx.feed(pkt.timestamp, pkt.marker, pkt.payload, pkt.sequence_number, now)
        now += 0.02
    got += rx.on_timer(now + 1)
    assert "".join(d.digit or "?" for d in got) == digits
    assert all(d.ended and d.duration_ms == 80.0 for d in got)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 0xFFFFFFFF),
            st.booleans(),
            st.binary(min_size=0, max_size=6),
            st.integers(0, 0xFFFF),
            st.floats(0.0, 0.5),
        ),
        max_size=40,
    )
)
def test_fuzz_receiver_never_raises_and_reports_each_timestamp_once(
    feeds: list[tuple[int, bool, bytes, int, float]],
) -> None:
    rx = DtmfReceiver()
    now = 0.0
    reported: list[tuple[int, int]] = []
    for ts, marker, data, seq, dt in feeds:
        now += dt
        reported += [(d.timestamp, d.event) for d in rx.feed(ts, marker, data, seq, now)]
        reported += [(d.timestamp, d.event) for d in rx.on_timer(now)]
    reported += [(d.timestamp, d.event) for d in rx.on_timer(now + 10)]
    # an event (timestamp, code) is never reported twice in a row
    for i, a in enumerate(reported):
        for b in reported[i + 1 : i + 3]:
            assert a != b


def test_feed_without_now_uses_last_known_time() -> None:
    rx = DtmfReceiver(timeout=0.3)
    assert rx.on_timer(100.0) == []
    rx.feed(1000, True, _ev(9, 160), 1)
    assert rx.on_timer(100.1) == []
    (d,) = rx.on_timer(100.4)
    assert d.digit == "9" and not d.ended
