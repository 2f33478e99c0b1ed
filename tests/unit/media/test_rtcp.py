from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.errors import RtcpParseError
from media.rtcp import (
    NTP_UNIX_OFFSET,
    Bye,
    ReceiverReport,
    ReceptionStats,
    ReportBlock,
    RtcpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    UnknownRtcpPacket,
    ntp_from_unix,
    ntp_middle32,
    parse_rtcp,
    round_trip_time,
    serialize_rtcp,
    unix_from_ntp,
)


def _block_bytes(ssrc: int, frac: int, lost: int, ehs: int, jitter: int, lsr: int, dlsr: int) -> bytes:
    return struct.pack("!IIIIII", ssrc, (frac << 24) | (lost & 0xFFFFFF), ehs, jitter, lsr, dlsr)


def test_sender_report_wire_format_by_hand() -> None:
    blk = _block_bytes(0x11111111, 25, -3, 0x0001FFFF, 80, 0xAABBCCDD, 0x00010000)
    body = struct.pack("!IQIII", 0xCAFEBABE, 0x0123456789ABCDEF, 160000, 1000, 160000) + blk
    wire = struct.pack("!BBH", 0x81, 200, len(body) // 4) + body
    (sr,) = parse_rtcp(wire)
    assert isinstance(sr, SenderReport)
    assert sr.ssrc == 0xCAFEBABE and sr.ntp_timestamp == 0x0123456789ABCDEF
    assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (160000, 1000, 160000)
    (b,) = sr.reports
    assert b == ReportBlock(0x11111111, 25, -3, 0x0001FFFF, 80, 0xAABBCCDD, 0x00010000)
    assert sr.serialize() == wire


def test_compound_rr_sdes_bye_roundtrip() -> None:
    packets: list[RtcpPacket] = [
        ReceiverReport(0x01020304, [ReportBlock(5, 0, 0x7FFFFF, 70000, 12, 0, 0)]),
        SourceDescription(
            [
                SdesChunk(0x01020304, [(1, b"gw@example.org")]),
                SdesChunk(7, [(1, b"x"), (6, b"orbit-gateway")]),
            ]
        ),
        Bye([0x01020304, 9], "hangup"),
        UnknownRtcpPacket(204, 3, b"nameDATA"),
    ]
    wire = serialize_rtcp(packets)
    assert len(wire) % 4 == 0
    parsed = parse_rtcp(wire, strict=True)
    assert parsed == packets
    sdes = parsed[1]
    assert isinstance(sdes, SourceDescription)
    assert sdes.chunks[0].cname == "gw@example.org"
    assert SourceDescription.with_cname(1, "a@b").chunks[0].cname == "a@b"
    assert SdesChunk(1, [(6, b"tool")]).cname is None


def test_sdes_chunk_padding_always_has_terminator() -> None:
    for n in range(0, 9):
        chunk = SdesChunk(1, [(1, b"x" * n)]).serialize()
        assert len(chunk) % 4 == 0
        assert chunk[4 + 2 + n] == 0  # at least one null octet ends the item list


def test_bye_without_reason_and_empty_rr() -> None:
    wire = Bye([42]).serialize() + ReceiverReport(1).serialize()
    assert parse_rtcp(wire) == [Bye([42], None), ReceiverReport(1)]
    assert ReceiverReport(1).serialize() == bytes.fromhex("80c9000100000001")


def test_padding_in_last_packet() -> None:
    rr = ReceiverReport(7).serialize()
    padded = bytearray(rr + b"\x00\x00\x00\x04")
    padded[0] |= 0x20
    padded[3] += 1
    assert parse_rtcp(bytes(padded), strict=True) == [ReceiverReport(7)]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\xc8\x00",
        bytes.fromhex("40c9000100000001"),  # version 1
        bytes.fromhex("80c9000500000001"),  # length beyond data
        bytes.fromhex("81c9000100000001"),  # RC=1 but no block
        bytes.fromhex("81c8000100000001"),  # SR too short
        bytes.fromhex("81ca000100000001"),  # SDES without terminator
        bytes.fromhex("81ca00020000000101ff0000"),  # SDES item longer than packet
        bytes.fromhex("82cb000100000001"),  # BYE count 2, one SSRC
        bytes.fromhex("81cb00020000000108616263"),  # BYE reason truncated
        bytes.fromhex("a0c9000100000000"),  # pad count 0
        bytes.fromhex("a0c9000100000009"),  # pad count > length
        bytes.fromhex("a0c90000"),  # padding bit on empty packet
        bytes.fromhex("80c900010000000100"),  # trailing garbage
    ],
)
def test_malformed_rtcp_raises_typed_error(data: bytes) -> None:
    with pytest.raises(RtcpParseError):
        parse_rtcp(data)


def test_strict_rules() -> None:
    sdes = SourceDescription.with_cname(1, "x").serialize()
    assert parse_rtcp(sdes)  # lenient: feedback-only/reduced-size compounds are accepted
    with pytest.raises(RtcpParseError):
        parse_rtcp(sdes, strict=True)
    padded_first = bytearray(ReceiverReport(7).serialize() + b"\x00\x00\x00\x04")
    padded_first[0] |= 0x20
    padded_first[3] += 1
    compound = bytes(padded_first) + sdes
    assert len(parse_rtcp(compound)) == 2
    with pytest.raises(RtcpParseError):
        parse_rtcp(compound, strict=True)
    with pytest.raises(RtcpParseError):
        parse_rtcp("nope")  # type: ignore[arg-type]


@given(st.binary(max_size=120))
def test_fuzz_only_typed_errors(data: bytes) -> None:
    try:
        parse_rtcp(data)
    except RtcpParseError:
        pass


@given(st.binary(max_size=60))
def test_fuzz_valid_header_random_body(body: bytes) -> None:
    body = body[: len(body) // 4 * 4]
    for pt in (200, 201, 202, 203, 204, 205):
        for count in (0, 1, 2, 31):
            wire = struct.pack("!BBH", 0x80 | count, pt, len(body) // 4) + body
            try:
                parse_rtcp(wire)
            except RtcpParseError:
                pass


def test_serialize_validation() -> None:
    with pytest.raises(ValueError):
        ReportBlock(1, 256, 0, 0, 0).serialize()
    with pytest.raises(ValueError):
        ReportBlock(1, 0, 0x800000, 0, 0).serialize()
    with pytest.raises(ValueError):
        ReceiverReport(1, [ReportBlock(1, 0, 0, 0, 0)] * 32).serialize()
    with pytest.raises(ValueError):
        ReceiverReport(1, extension=b"abc").serialize()
    with pytest.raises(ValueError):
        SdesChunk(1, [(1, b"x" * 256)]).serialize()
    with pytest.raises(ValueError):
        UnknownRtcpPacket(204, 0, b"abc").serialize()
    assert ReportBlock(1, 0, -0x800000, 0, 0).serialize()[5:8] == b"\x80\x00\x00"


# --------------------------------------------------------------------------- NTP / RTT


def test_ntp_conversions() -> None:
    assert ntp_from_unix(0.0) == NTP_UNIX_OFFSET << 32
    assert ntp_from_unix(1.5) == ((NTP_UNIX_OFFSET + 1) << 32) | 0x80000000
    t = 1_700_000_000.123456
    assert abs(unix_from_ntp(ntp_from_unix(t)) - t) < 1e-6
    after_2036 = 2_200_000_000.25  # NTP era 1: seconds field wrapped
    assert abs(unix_from_ntp(ntp_from_unix(after_2036)) - after_2036) < 1e-6
    assert ntp_middle32(0x0123456789ABCDEF) == 0x456789AB


def test_round_trip_time_from_lsr_dlsr() -> None:
    sent = 1_700_000_000.0
    lsr = ntp_middle32(ntp_from_unix(sent))
    held = 0.75
    block = ReportBlock(1, 0, 0, 0, 0, lsr, int(held * 65536))
    rtt = round_trip_time(block, sent + held + 0.084)
    assert rtt is not None and abs(rtt - 0.084) < 2 / 65536
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0, 0, 0), sent) is None
    assert round_trip_time(block, sent) is None  # would be negative


# --------------------------------------------------------------------------- reception


def _feed(rs: ReceptionStats, seqs: list[int], ssrc: int = 1, start: float = 0.0) -> list[bool]:
    out = []
    for i, s in enumerate(seqs):
        out.append(rs.update(s & 0xFFFF, (s * 160) & 0xFFFFFFFF, start + i * 0.02, ssrc))
    return out


def test_probation_then_counting() -> None:
    rs = ReceptionStats(8000)
    assert rs.report_block(0.0) is None
    results = _feed(rs, list(range(1000, 1100)))
    assert results[0] is False and all(results[1:])
    assert rs.valid
    assert rs.received == 99 and rs.expected == 99 and rs.lost == 0
    assert rs.extended_highest_seq == 1099
    assert rs.jitter == pytest.approx(0.0, abs=1e-6)
    blk = rs.report_block(2.0)
    assert blk is not None
    assert (blk.ssrc, blk.fraction_lost, blk.cumulative_lost, blk.extended_highest_seq) == (1, 0, 0, 1099)


def test_probation_rejects_random_noise() -> None:
    rs = ReceptionStats(8000)
    assert not any(_feed(rs, [5, 900, 77, 3000, 12]))
    assert not rs.valid and rs.expected == 0
    assert _feed(rs, [13]) == [True]


def test_min_sequential_one_counts_first_packet() -> None:
    rs = ReceptionStats(8000, min_sequential=1)
    assert _feed(rs, [7, 8]) == [True, True]
    assert rs.received == 2 and rs.expected == 2


def test_loss_and_fraction_per_interval() -> None:
    rs = ReceptionStats(8000)
    seqs = [s for s in range(0, 101) if s not in (10, 20, 30, 40, 50)]
    _feed(rs, seqs)
    assert rs.expected == 100 and rs.received == 95 and rs.lost == 5
    blk = rs.report_block(1.0)
    assert blk is not None
    assert blk.cumulative_lost == 5 and blk.fraction_lost == (5 << 8) // 100
    assert rs.fraction_lost == pytest.approx(blk.fraction_lost / 256)
    _feed(rs, list(range(101, 201)), start=3.0)
    blk2 = rs.report_block(2.0)
    assert blk2 is not None and blk2.fraction_lost == 0 and blk2.cumulative_lost == 5


def test_duplicates_make_cumulative_lost_negative_and_fraction_zero() -> None:
    rs = ReceptionStats(8000)
    _feed(rs, [1, 2, 3, 3, 3, 4, 5])
    assert rs.lost == -2
    blk = rs.report_block(1.0)
    assert blk is not None and blk.cumulative_lost == -2 and blk.fraction_lost == 0
    assert ReportBlock.parse(blk.serialize()).cumulative_lost == -2


def test_sequence_wrap_extends_highest() -> None:
    rs = ReceptionStats(8000)
    _feed(rs, list(range(65530, 65536)) + list(range(0, 10)))
    assert rs.extended_highest_seq == 65536 + 9
    assert rs.lost == 0 and rs.received == 15


def test_reordered_packet_does_not_move_highest() -> None:
    rs = ReceptionStats(8000)
    _feed(rs, [1, 2, 4, 3, 5])
    assert rs.extended_highest_seq == 5 and rs.lost == 0


def test_restart_after_two_sequential_large_jumps() -> None:
    rs = ReceptionStats(8000)
    _feed(rs, list(range(100, 200)))
    assert _feed(rs, [30000], start=5.0) == [False]
    assert _feed(rs, [30001], start=5.02) == [True]
    assert rs.restarts == 1
    assert rs.received == 1 and rs.extended_highest_seq == 30001 and rs.lost == 0


def test_ssrc_change_resets() -> None:
    rs = ReceptionStats(8000)
    _feed(rs, list(range(0, 50)), ssrc=1)
    rs.on_sender_report(ntp_from_unix(1_700_000_000.0), 1.0)
    _feed(rs, list(range(9000, 9010)), ssrc=2, start=2.0)
    assert rs.ssrc == 2 and rs.ssrc_changes == 1
    assert rs.received == 9 and rs.extended_highest_seq == 9009
    blk = rs.report_block(3.0)
    assert blk is not None and blk.ssrc == 2 and blk.lsr == 0 and blk.dlsr == 0


def test_jitter_converges_for_alternating_delay() -> None:
    rs = ReceptionStats(8000)
    for i in range(400):
        delay = 0.010 if i % 2 else 0.0
        rs.update(i, i * 160, i * 0.02 + delay, 1)
    # |D| is 10 ms (80 timestamp units) for every packet pair.
    assert rs.jitter == pytest.approx(80.0, rel=1e-3)
    assert rs.jitter_ms == pytest.approx(10.0, rel=1e-3)
    blk = rs.report_block(10.0)
    assert blk is not None and blk.jitter == 79


def test_jitter_handles_timestamp_wrap() -> None:
    rs = ReceptionStats(8000)
    base = 0xFFFFFFFF - 160 * 10
    for i in range(40):
        rs.update(i, (base + i * 160) & 0xFFFFFFFF, i * 0.02, 1)
    assert rs.jitter == pytest.approx(0.0, abs=1e-6)


def test_lsr_dlsr_in_report_block() -> None:
    rs = ReceptionStats(8000)
    _feed(rs, list(range(10)))
    ntp = ntp_from_unix(1_700_000_000.5)
    rs.on_sender_report(ntp, 100.0)
    blk = rs.report_block(100.25)
    assert blk is not None
    assert blk.lsr == ntp_middle32(ntp)
    assert blk.dlsr == 16384


def test_report_block_roundtrip_through_rr() -> None:
    rs = ReceptionStats(8000)
    _feed(rs, [s for s in range(300) if s % 7])
    blk = rs.report_block(1.0)
    assert blk is not None
    rr = ReceiverReport(99, [blk])
    assert parse_rtcp(rr.serialize()) == [rr]
