"""Minimal pcap reader for tests: pcap records -> UDP datagrams (pure struct)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

SIPP_PCAP_DIR = Path("/usr/share/sip-tester")

_LINK_NULL = 0
_LINK_ETHERNET = 1
_LINK_RAW = 101
_LINK_LINUX_SLL = 113
_LINK_LINUX_SLL2 = 276


@dataclass(frozen=True)
class UdpDatagram:
    time: float
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes


def _ipv4(pkt: bytes, time: float) -> UdpDatagram | None:
    if len(pkt) < 20 or pkt[0] >> 4 != 4:
        return None
    ihl = (pkt[0] & 0x0F) * 4
    total_len, frag, proto = struct.unpack_from("!H2xHxB", pkt, 2)
    if proto != 17 or frag & 0x1FFF or frag & 0x2000:  # not UDP, or a fragment
        return None
    src = ".".join(str(b) for b in pkt[12:16])
    dst = ".".join(str(b) for b in pkt[16:20])
    return _udp(pkt[ihl:total_len], time, src, dst)


def _ipv6(pkt: bytes, time: float) -> UdpDatagram | None:
    if len(pkt) < 40 or pkt[0] >> 4 != 6 or pkt[6] != 17:
        return None
    (plen,) = struct.unpack_from("!H", pkt, 4)
    src = pkt[8:24].hex()
    dst = pkt[24:40].hex()
    return _udp(pkt[40 : 40 + plen], time, src, dst)


def _udp(seg: bytes, time: float, src: str, dst: str) -> UdpDatagram | None:
    if len(seg) < 8:
        return None
    sport, dport, length = struct.unpack_from("!HHH", seg, 0)
    return UdpDatagram(time, src, sport, dst, dport, bytes(seg[8:length]))


def _network_layer(linktype: int, frame: bytes) -> tuple[int, bytes] | None:
    """Return (ethertype, network-layer bytes)."""
    if linktype == _LINK_ETHERNET:
        if len(frame) < 14:
            return None
        (etype,) = struct.unpack_from("!H", frame, 12)
        off = 14
        while etype in (0x8100, 0x88A8) and len(frame) >= off + 4:  # VLAN tags
            (etype,) = struct.unpack_from("!H", frame, off + 2)
            off += 4
        return etype, frame[off:]
    if linktype == _LINK_LINUX_SLL:
        if len(frame) < 16:
            return None
        (etype,) = struct.unpack_from("!H", frame, 14)
        return etype, frame[16:]
    if linktype == _LINK_LINUX_SLL2:
        if len(frame) < 20:
            return None
        (etype,) = struct.unpack_from("!H", frame, 0)
        return etype, frame[20:]
    if linktype == _LINK_NULL:
        if len(frame) < 4:
            return None
        family = struct.unpack_from("<I", frame, 0)[0]
        return (0x0800 if family == 2 else 0x86DD), frame[4:]
    if linktype == _LINK_RAW:
        return (0x0800 if frame and frame[0] >> 4 == 4 else 0x86DD), frame
    raise ValueError(f"unsupported pcap link type {linktype}")


def read_udp(path: Path) -> list[UdpDatagram]:
    data = path.read_bytes()
    if len(data) < 24:
        raise ValueError("not a pcap file")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError("not a pcap file (pcapng is not supported)")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    (linktype,) = struct.unpack_from(endian + "I", data, 20)
    out: list[UdpDatagram] = []
    pos = 24
    rec = struct.Struct(endian + "IIII")
    while pos + 16 <= len(data):
        sec, frac, incl, _orig = rec.unpack_from(data, pos)
        pos += 16
        frame = data[pos : pos + incl]
        pos += incl
        time = sec + frac / (1e9 if nano else 1e6)
        net = _network_layer(linktype, frame)
        if net is None:
            continue
        etype, pkt = net
        dgram = _ipv4(pkt, time) if etype == 0x0800 else _ipv6(pkt, time) if etype == 0x86DD else None
        if dgram is not None:
            out.append(dgram)
    return out
