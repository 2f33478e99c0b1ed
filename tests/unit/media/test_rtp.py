from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.errors import MediaError, RtpParseError
from media.rtp import (
    RtpExtension,
    RtpPacket,
    RtpSender,
    SequenceExtender,
    build_packet,
    extend_seq,
    extend_ts,
    is_rtcp,
    pack_header_into,
    parse_header_fast,
    payload_end,
    seq_add,
    seq_diff,
    seq_lt,
    ts_add,
    ts_diff,
)
from tests.unit.media.pcap_util import SIPP_PCAP_DIR, read_udp


def test_parse_minimal_packet_by_hand() -> None:
    data = bytes.fromhex("80e51f30000033e00e05384e") + b"\x01\x0a\x00\x00"
    pkt = RtpPacket.parse(data)
    assert pkt.version == 2
    assert pkt.marker is True
    assert pkt.payload_type == 101
    assert pkt.sequence_number == 0x1F30
    assert pkt.timestamp == 0x33E0
    assert pkt.ssrc == 0x0E05384E
    assert pkt.payload == b"\x01\x0a\x00\x00"
    assert pkt.csrcs == () and pkt.extension is None and pkt.padding == 0
    assert pkt.serialize() == data


def test_roundtrip_with_csrcs_extension_and_padding() -> None:
    pkt = RtpPacket(
        payload_type=0,
        sequence_number=65535,
        timestamp=0xFFFFFFFF,
        ssrc=0xDEADBEEF,
        payload=b"\xff" * 160,
        marker=False,
        csrcs=(1, 2, 3),
        extension=RtpExtension(0xBEDE, b"\x10\xaa\x00\x00"),
        padding=4,
    )
    wire = pkt.serialize()
    assert len(wire) == 12 + 12 + 4 + 4 + 160 + 4
    assert wire[0] == 0x80 | 0x20 | 0x10 | 3
    assert wire[-1] == 4
    assert RtpPacket.parse(wire) == pkt
    pt, seq, ts, ssrc, marker, off = parse_header_fast(wire)
    assert (pt, seq, ts, ssrc, marker) == (0, 65535, 0xFFFFFFFF, 0xDEADBEEF, False)
    assert wire[off : payload_end(wire, off)] == pkt.payload


def test_fast_builders_match_model() -> None:
    payload = bytes(range(160))
    a = build_packet(8, 70000, 2**32 + 5, 42, payload, marker=True)
    b = RtpPacket(8, 70000 & 0xFFFF, 5, 42, payload, marker=True).serialize()
    assert a == b
    buf = bytearray(12 + 160)
    pack_header_into(buf, 0, 8, 70000, 2**32 + 5, 42, True)
    buf[12:] = payload
    assert bytes(buf) == b
    assert parse_header_fast(memoryview(buf)) == (8, 70000 & 0xFFFF, 5, 42, True, 12)


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "short"),
        (b"\x80" * 11, "short"),
        (bytes.fromhex("40000000000000000000000000"), "version"),
        (bytes.fromhex("8f00000000000000000000000000"), "csrc"),
        (bytes.fromhex("9000000000000000000000000000"), "extension header"),
        (bytes.fromhex("900000000000000000000000bede0002aabbccdd"), "extension length"),
        (bytes.fromhex("a00000000000000000000000"), "padding no bytes"),
        (bytes.fromhex("a000000000000000000000000103"), "padding too long"),
        (bytes.fromhex("a000000000000000000000000100"), "padding zero"),
    ],
)
def test_malformed_packets_raise_typed_error(data: bytes, reason: str) -> None:
    with pytest.raises(RtpParseError):
        RtpPacket.parse(data)


def test_fast_parse_rejects_like_full_parse() -> None:
    with pytest.raises(RtpParseError):
        parse_header_fast(b"\x80\x00")
    with pytest.raises(RtpParseError):
        parse_header_fast(bytes.fromhex("40000000000000000000000000"))
    with pytest.raises(RtpParseError):
        parse_header_fast(bytes.fromhex("8f00000000000000000000000000"))
    with pytest.raises(RtpParseError):
        payload_end(bytes.fromhex("a000000000000000000000000103"), 12)
    with pytest.raises(RtpParseError):
        payload_end(b"", 12)


def test_parse_rejects_non_bytes_with_typed_error() -> None:
    with pytest.raises(RtpParseError):
        RtpPacket.parse("not bytes")  # type: ignore[arg-type]


@given(st.binary(max_size=80))
def test_fuzz_parse_only_raises_typed_error(data: bytes) -> None:
    try:
        pkt = RtpPacket.parse(data)
    except RtpParseError:
        try:
            *_fields, off = parse_header_fast(data)
            payload_end(data, off)
        except RtpParseError:
            return
        raise AssertionError("fast path accepted what the full parser rejected") from None
    # Anything that parses re-serializes to the identical bytes, padding content aside.
    wire = pkt.serialize()
    assert len(wire) == len(data)
    n = len(data) - pkt.padding
    assert wire[:n] == data[:n]
    _pt, _seq, _ts, _ssrc, _m, off = parse_header_fast(data)
    assert data[off : payload_end(data, off)] == pkt.payload


@given(
    pt=st.integers(0, 127),
    seq=st.integers(0, 0xFFFF),
    ts=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    ext=st.none()
    | st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=12).map(lambda b: b[: len(b) // 4 * 4])),
    payload=st.binary(max_size=64),
    padding=st.integers(0, 255),
)
def test_roundtrip_property(
    pt: int,
    seq: int,
    ts: int,
    ssrc: int,
    marker: bool,
    csrcs: list[int],
    ext: tuple[int, bytes] | None,
    payload: bytes,
    padding: int,
) -> None:
    pkt = RtpPacket(
        pt,
        seq,
        ts,
        ssrc,
        payload,
        marker,
        tuple(csrcs),
        RtpExtension(*ext) if ext else None,
        padding,
    )
    assert RtpPacket.parse(pkt.serialize()) == pkt


def test_serialize_validates_ranges() -> None:
    for bad in (
        RtpPacket(128, 0, 0, 0),
        RtpPacket(0, 65536, 0, 0),
        RtpPacket(0, 0, 2**32, 0),
        RtpPacket(0, 0, 0, -1),
        RtpPacket(0, 0, 0, 0, csrcs=tuple(range(16))),
        RtpPacket(0, 0, 0, 0, extension=RtpExtension(1, b"abc")),
        RtpPacket(0, 0, 0, 0, padding=256),
        RtpPacket(0, 0, 0, 0, version=1),
    ):
        with pytest.raises(ValueError):
            bad.serialize()


def test_errors_are_one_family() -> None:
    assert issubclass(RtpParseError, MediaError)
    assert issubclass(RtpParseError, ValueError)


def test_is_rtcp_demux() -> None:
    assert is_rtcp(bytes([0x80, 200]) + bytes(6))
    assert is_rtcp(bytes([0x81, 201]) + bytes(6))
    assert not is_rtcp(build_packet(0, 1, 1, 1, b""))
    assert not is_rtcp(build_packet(96, 1, 1, 1, b"", marker=True))
    assert not is_rtcp(b"\x80")


def test_sequence_arithmetic() -> None:
    assert seq_add(65535, 1) == 0
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(10, 10) == 0
    assert seq_diff(32767, 0) == 32767
    assert seq_diff(32768, 0) == -32768
    assert seq_lt(65535, 0) and not seq_lt(0, 65535)
    assert extend_seq(2, 65534) == 65538
    assert extend_seq(65534, 65538) == 65534
    assert extend_seq(5, 3 * 65536 + 10) == 3 * 65536 + 5
    assert ts_add(0xFFFFFFFF, 2) == 1
    assert ts_diff(1, 0xFFFFFFFF) == 2
    assert ts_diff(0xFFFFFFFF, 1) == -2
    assert extend_ts(100, 2**32 - 50) == 2**32 + 100
    assert extend_ts(2**32 - 50, 2**32 + 100) == 2**32 - 50


def test_sequence_extender_handles_wrap_and_reorder() -> None:
    ext = SequenceExtender()
    seqs = [65533, 65534, 0, 65535, 1, 2, 65535]
    assert [ext.extend(s) for s in seqs] == [65533, 65534, 65536, 65535, 65537, 65538, 65535]
    assert ext.highest == 65538
    ext.reset()
    assert ext.highest is None


def test_sender_stamps_and_advances() -> None:
    s = RtpSender(0, ssrc=0x1234, sequence_number=65535, timestamp=0xFFFFFFA0)
    p1 = RtpPacket.parse(s.next_packet(b"\x00" * 160, 160))
    p2 = RtpPacket.parse(s.next_packet(b"\x00" * 160, 160))
    assert (p1.sequence_number, p1.timestamp, p1.marker) == (65535, 0xFFFFFFA0, True)
    assert (p2.sequence_number, p2.timestamp, p2.marker) == (0, 0x00000040, False)
    assert p1.ssrc == p2.ssrc == 0x1234
    s.advance(800)
    s.mark_gap()
    p3 = RtpPacket.parse(s.next_packet(b"\x00" * 160, 160))
    assert p3.marker and p3.timestamp == 0x40 + 160 + 800 and p3.sequence_number == 1
    p4 = RtpPacket.parse(s.next_packet(b"\x00" * 160, 160, marker=True))
    assert p4.marker
    ev = RtpPacket.parse(s.next_packet_at(b"\x01\x0a\x00\xa0", 101, 12345, marker=True))
    assert (ev.payload_type, ev.timestamp, ev.sequence_number, ev.marker) == (101, 12345, 3, True)
    assert s.timestamp == 0x40 + 160 * 3 + 800
    assert s.sequence_number == 4
    assert s.packets_sent == 5 and s.octets_sent == 4 * 160 + 4


def test_sender_random_initial_state_is_in_range() -> None:
    seen = set()
    for _ in range(20):
        s = RtpSender(8)
        assert (
            0 <= s.ssrc <= 0xFFFFFFFF and 0 <= s.sequence_number <= 0xFFFF and 0 <= s.timestamp <= 0xFFFFFFFF
        )
        seen.add(s.ssrc)
    assert len(seen) > 1
    with pytest.raises(ValueError):
        RtpSender(128)


def test_real_capture_g711a() -> None:
    dgrams = read_udp(SIPP_PCAP_DIR / "g711a.pcap")
    pkts = [RtpPacket.parse(d.payload) for d in dgrams]
    assert len(pkts) == 236
    assert {p.payload_type for p in pkts} == {8}
    assert len({p.ssrc for p in pkts}) == 1
    assert pkts[0].marker and not any(p.marker for p in pkts[1:])
    for a, b in itertools.pairwise(pkts):
        assert seq_diff(b.sequence_number, a.sequence_number) == 1
        assert ts_diff(b.timestamp, a.timestamp) == 240
        assert len(b.payload) == 240
    for d, p in zip(dgrams, pkts, strict=True):
        fast = parse_header_fast(d.payload)
        assert fast == (p.payload_type, p.sequence_number, p.timestamp, p.ssrc, p.marker, 12)
    assert struct.unpack("!H", dgrams[0].payload[2:4])[0] == pkts[0].sequence_number
