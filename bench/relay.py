"""Timestamping RTP relay between the gateway and SIPp (the carrier's media echo).

    gateway RTP --> [relay :PORT] --> SIPp -rtp_echo :TARGET
    gateway RTP <-- [relay :PORT] <-- SIPp (the same packets, echoed)

The benchmark points some calls' SDP at PORT instead of SIPp's media port. Every
packet is stamped and logged as a compact binary record (RECORD below):

    dir 0  from the gateway    kernel receive time (SO_TIMESTAMPNS, CLOCK_REALTIME)
    dir 2  echo from SIPp      kernel receive time
    dir 1  sent to the gateway time.time_ns() just before sendto

`flags` bit 0 is set when the payload is loud (the load agent's marker tone), bit 1
is the RTP marker bit. The echo comes back with the gateway's own SSRC, which tells
the relay which gateway address it belongs to. RTCP sent to PORT+1 is counted and
dropped. Runs until SIGTERM/SIGINT or --max-seconds, then writes totals to OUT.json.

    python -m bench.relay --port 40000 --target-port 26000 --out /tmp/relay.bin
"""

from __future__ import annotations

import argparse
import json
import selectors
import signal
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.g711 import ALAW_LOUD, ULAW_LOUD

RECORD = struct.Struct("<HBBHIq")  # gateway port, dir, flags, seq, rtp timestamp, time ns
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TS = struct.Struct("qq")
_RTP = struct.Struct("!BBHII")
LOOPBACK = "127.0.0.1"
FLUSH_BYTES = 1 << 18
BATCH = 256


class Relay:
    def __init__(self, port: int, target: tuple[str, int], out: Path) -> None:
        self.gw_sock = self._socket(port)
        self.rtcp_sock = self._socket(port + 1)
        self.carrier_sock = self._socket(0)
        self.target = target
        self.out_path = out
        self.out = out.open("wb")
        self.buf = bytearray()
        self.by_ssrc: dict[int, tuple[str, int]] = {}
        self.counts = {
            "from_gateway": 0,
            "from_carrier": 0,
            "to_gateway": 0,
            "unknown_ssrc": 0,
            "not_rtp": 0,
            "rtcp": 0,
            "send_errors": 0,
        }
        self.running = True

    @staticmethod
    def _socket(port: int) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind((LOOPBACK, port))
        s.setblocking(False)
        return s

    def run(self, max_seconds: float) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.gw_sock, selectors.EVENT_READ, self._from_gateway)
        sel.register(self.carrier_sock, selectors.EVENT_READ, self._from_carrier)
        sel.register(self.rtcp_sock, selectors.EVENT_READ, self._rtcp)
        deadline = time.monotonic() + max_seconds
        try:
            while self.running and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.5):
                    key.data()
                if len(self.buf) >= FLUSH_BYTES:
                    self.flush()
        finally:
            sel.close()
            self.close()

    @staticmethod
    def _stamp(ancdata: list[tuple[int, int, bytes]]) -> int:
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TS.size:
                sec, nsec = _TS.unpack_from(data)
                return sec * 1_000_000_000 + nsec
        return time.time_ns()

    @staticmethod
    def _parse(data: bytes) -> tuple[int, int, int, int, bool] | None:
        """(flags, seq, ts, ssrc, is_audio) of an RTP packet, None if it is not one."""
        if len(data) < 12:
            return None
        b0, b1, seq, ts, ssrc = _RTP.unpack_from(data)
        if b0 >> 6 != 2:
            return None
        pt = b1 & 0x7F
        offset = 12 + 4 * (b0 & 0x0F)
        if b0 & 0x10 and len(data) >= offset + 4:
            offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
        flags = 2 if b1 & 0x80 else 0
        audio = pt in (0, 8)
        if audio:
            payload = data[offset:]
            if b"\x01" in payload.translate(ULAW_LOUD if pt == 0 else ALAW_LOUD):
                flags |= 1
        return flags, seq, ts, ssrc, audio

    def _received(self, sock: socket.socket) -> Iterator[tuple[bytes, Any, int, tuple[int, int, int, int, bool]]]:
        """Up to BATCH waiting RTP packets: (data, source, kernel receive time, parsed header)."""
        for _ in range(BATCH):
            try:
                data, anc, _flags, addr = sock.recvmsg(2048, 64)
            except BlockingIOError:
                return
            except OSError:
                continue
            t = self._stamp(anc)
            parsed = self._parse(data)
            if parsed is None:
                self.counts["not_rtp"] += 1
                continue
            yield data, addr, t, parsed

    def _from_gateway(self) -> None:
        for data, addr, t, (flags, seq, ts, ssrc, _audio) in self._received(self.gw_sock):
            self.counts["from_gateway"] += 1
            self.by_ssrc[ssrc] = addr
            self.buf += RECORD.pack(addr[1], 0, flags, seq, ts, t)
            try:
                self.carrier_sock.sendto(data, self.target)
            except OSError:
                self.counts["send_errors"] += 1

    def _from_carrier(self) -> None:
        for data, _addr, t, (flags, seq, ts, ssrc, _audio) in self._received(self.carrier_sock):
            self.counts["from_carrier"] += 1
            dest = self.by_ssrc.get(ssrc)
            if dest is None:
                self.counts["unknown_ssrc"] += 1
                continue
            self.buf += RECORD.pack(dest[1], 2, flags, seq, ts, t)
            sent = time.time_ns()
            try:
                self.gw_sock.sendto(data, dest)
            except OSError:
                self.counts["send_errors"] += 1
                continue
            self.counts["to_gateway"] += 1
            self.buf += RECORD.pack(dest[1], 1, flags, seq, ts, sent)

    def _rtcp(self) -> None:
        for _ in range(BATCH):
            try:
                self.rtcp_sock.recv(2048)
            except BlockingIOError:
                return
            except OSError:
                continue
            self.counts["rtcp"] += 1

    def flush(self) -> None:
        if self.buf:
            self.out.write(self.buf)
            self.out.flush()
            self.buf.clear()

    def close(self) -> None:
        self.flush()
        self.out.close()
        for s in (self.gw_sock, self.rtcp_sock, self.carrier_sock):
            s.close()
        Path(str(self.out_path) + ".json").write_text(json.dumps(self.counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True, help="UDP port the gateway sends RTP to (RTCP: +1)")
    parser.add_argument("--target-port", type=int, required=True, help="SIPp's -rtp_echo port")
    parser.add_argument("--target-host", default=LOOPBACK)
    parser.add_argument("--out", type=Path, required=True, help="binary packet log")
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop by itself after this long")
    args = parser.parse_args()
    relay = Relay(args.port, (args.target_host, args.target_port), args.out)

    def stop(_sig: int, _frame: object) -> None:
        relay.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    relay.run(args.max_seconds)


if __name__ == "__main__":
    main()
