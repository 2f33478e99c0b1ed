"""One call's RTP/RTCP UDP endpoint: sockets, strict-source filtering, NAT learning.

``RtpEndpoint(local_address, rtp_port, *, on_rtp, on_rtcp, learn_window=2.0, clock=time.monotonic)``
    ``await open()`` binds RTP on ``rtp_port`` and RTCP on ``rtp_port + 1``; raises
    :class:`MediaPortBusy` if either is taken (nothing stays bound then).
    ``set_remote(address, port, rtcp_port, payload_types, *, rtcp_mux=False)``
    configures the peer; ``send_rtp(data)`` / ``send_rtcp(data)`` send to it;
    ``close()`` closes both sockets. Read-only state: ``remote`` (signalled),
    ``locked`` (source RTP is accepted from and sent to), ``lock_final``,
    ``rtp_destination``, ``rtcp_destination``; counters ``dropped_foreign``,
    ``malformed``, ``unexpected_pt``, ``rtcp_malformed``, ``send_errors``.

``on_rtp(data, pt, seq, timestamp, ssrc, marker, payload_offset, payload_end, now)``
gets each accepted RTP packet with its header already parsed;
``on_rtcp(packets, now)`` gets each accepted, parsed RTCP compound packet.
Neither handler may raise (exceptions are logged and swallowed, never propagated
into the event loop's datagram path).

Source rule (symmetric RTP, RFC 4961, with strict source):

* Only RTP version 2 with a negotiated payload type counts as valid.
* A valid packet from the signalled address (SDP ``c=``/``m=``) locks the
  endpoint to it for good.
* NAT: until something is locked, a source other than the signalled one is
  learned once it sends two valid packets in sequence (same SSRC, seq + 1).
  Such a learned lock is provisional for ``learn_window`` seconds: in that time a
  valid packet from the signalled address still takes over (the real peer beats
  an injector that raced it); after it the lock is final.
* Everything from other sources is dropped and counted in ``dropped_foreign``;
  a malformed packet from the locked/signalled source counts in ``malformed``.
* ``set_remote`` with a different address forgets the lock and learns again;
  the same address keeps it (a re-INVITE for hold or codec change).
* RTP is sent to the locked source, else to the signalled address.
* RTCP is accepted from the IP of the RTP source (any port: NATs remap it); the
  first accepted RTCP packet's source becomes the RTCP destination, before that
  the signalled RTCP port is used. With ``rtcp_mux`` RTCP shares the RTP port.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from media.errors import RtcpParseError, RtpParseError
from media.rtcp import RtcpPacket, parse_rtcp
from media.rtp import parse_header_fast, payload_end

__all__ = ["MediaPortBusy", "RtpEndpoint"]

log = logging.getLogger(__name__)

Address = tuple[Any, ...]
RtpHandler = Callable[[bytes, int, int, int, int, bool, int, int, float], None]
RtcpHandler = Callable[[list[RtcpPacket], float], None]

_DSCP_EF_TOS = 0xB8  # Expedited Forwarding, the usual marking for voice
_MAX_CANDIDATES = 8


class MediaPortBusy(Exception):
    """The RTP or RTCP port of a call is already bound."""

    def __init__(self, address: str, port: int) -> None:
        super().__init__(f"media port {address}:{port} is already in use")
        self.address = address
        self.port = port


def _normalize_host(host: str, family: int) -> tuple[str, bool] | None:
    """(canonical text as the socket reports sources, routable) for an IP literal, else None."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    text = ip.compressed
    if family == socket.AF_INET6 and ip.version == 4:
        text = "::ffff:" + text  # a dual-stack socket sees IPv4 peers as v4-mapped
    # 0.0.0.0 is RFC 2543 hold; sending to it would reach this very host.
    return text, not ip.is_unspecified


class _RtpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: RtpEndpoint) -> None:
        self._endpoint = endpoint
        # The endpoint's own method receives: one Python call less for every packet.
        self.datagram_received = endpoint._rtp_received  # type: ignore[method-assign]

    def error_received(self, exc: Exception) -> None:
        self._endpoint.send_errors += 1


class _RtcpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: RtpEndpoint) -> None:
        self._endpoint = endpoint

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._endpoint._rtcp_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        self._endpoint.send_errors += 1


class RtpEndpoint:
    """See the module docstring."""

    def __init__(
        self,
        local_address: str,
        rtp_port: int,
        *,
        on_rtp: RtpHandler,
        on_rtcp: RtcpHandler,
        learn_window: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.local_address = local_address
        self.rtp_port = rtp_port
        self.learn_window = learn_window
        self._clock = clock  # monotonic seconds: arrival times (the handlers' `now`), the learn window
        self._family = socket.AF_INET6 if ":" in local_address else socket.AF_INET
        self._on_rtp = on_rtp
        self._on_rtcp = on_rtcp
        self._rtp_transport: asyncio.DatagramTransport | None = None
        self._rtcp_transport: asyncio.DatagramTransport | None = None
        self._remote: tuple[str, int] | None = None
        self._remote_sendable = False
        self._rtcp_remote: tuple[str, int] | None = None
        self._rtcp_learned: Address | None = None
        self._rtcp_mux = False
        self._payload_types: frozenset[int] = frozenset()
        self._locked: Address | None = None
        self._dest: Address | None = None
        self._final = False
        self._provisional_until = 0.0
        self._candidates: dict[Address, tuple[int, int]] = {}
        self._handler_errors = 0
        self.dropped_foreign = 0
        self.malformed = 0
        self.unexpected_pt = 0
        self.rtcp_malformed = 0
        self.send_errors = 0

    # ------------------------------------------------------------------ sockets

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        rtp_sock = self._bind(self.rtp_port)
        try:
            rtcp_sock = self._bind(self.rtp_port + 1)
        except BaseException:
            rtp_sock.close()
            raise
        try:
            rtp_t, _ = await loop.create_datagram_endpoint(lambda: _RtpProtocol(self), sock=rtp_sock)
            self._rtp_transport = rtp_t
            rtcp_t, _ = await loop.create_datagram_endpoint(lambda: _RtcpProtocol(self), sock=rtcp_sock)
            self._rtcp_transport = rtcp_t
        except BaseException:
            self.close()
            rtp_sock.close()
            rtcp_sock.close()
            raise

    def _bind(self, port: int) -> socket.socket:
        family = self._family
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            with contextlib.suppress(OSError):
                if family == socket.AF_INET:
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, _DSCP_EF_TOS)
                else:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, _DSCP_EF_TOS)
            sock.bind((self.local_address, port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise MediaPortBusy(self.local_address, port) from exc
            raise
        return sock

    def close(self) -> None:
        for transport in (self._rtp_transport, self._rtcp_transport):
            if transport is not None:
                transport.close()
        self._rtp_transport = None
        self._rtcp_transport = None

    @property
    def is_open(self) -> bool:
        return self._rtp_transport is not None

    # ------------------------------------------------------------------ remote

    def set_remote(
        self,
        address: str,
        port: int,
        rtcp_port: int,
        payload_types: frozenset[int],
        *,
        rtcp_mux: bool = False,
    ) -> None:
        normalized = _normalize_host(address, self._family)
        # A host name is never sent to (that would resolve it on every packet);
        # the peer's source is learned instead.
        sendable = normalized is not None and normalized[1] and port > 0
        remote = (normalized[0] if normalized is not None else address, port)
        if remote != self._remote:
            self._locked = None
            self._final = False
            self._candidates.clear()
            self._rtcp_learned = None
        self._remote = remote
        self._remote_sendable = sendable
        self._dest = self.rtp_destination
        self._rtcp_remote = (remote[0], rtcp_port) if sendable and rtcp_port > 0 else None
        self._rtcp_mux = rtcp_mux
        self._payload_types = payload_types

    @property
    def remote(self) -> tuple[str, int] | None:
        return self._remote

    @property
    def locked(self) -> Address | None:
        return self._locked

    @property
    def lock_final(self) -> bool:
        """True once the source can no longer change (until ``set_remote`` moves the peer)."""
        if not self._final and self._locked is not None and self._clock() >= self._provisional_until:
            self._final = True
        return self._final

    @property
    def rtp_destination(self) -> Address | None:
        if self._locked is not None:
            return self._locked
        return self._remote if self._remote_sendable else None

    @property
    def rtcp_destination(self) -> Address | None:
        if self._rtcp_learned is not None:
            return self._rtcp_learned
        if self._rtcp_mux:
            return self.rtp_destination
        locked = self._locked
        remote = self._remote
        if locked is not None and remote is not None and (locked[0], locked[1]) != remote:
            # Learned RTP source: the signalled RTCP address is as wrong as the RTP
            # one was; guess the next port until the peer's RTCP shows the real one.
            return (locked[0], locked[1] + 1)
        return self._rtcp_remote

    # ------------------------------------------------------------------ sending

    def send_rtp(self, data: bytes) -> bool:
        transport = self._rtp_transport
        dest = self._dest
        if transport is None or dest is None:
            return False
        transport.sendto(data, dest)
        return True

    def send_rtcp(self, data: bytes) -> bool:
        dest = self.rtcp_destination
        transport = self._rtp_transport if self._rtcp_mux else self._rtcp_transport
        if transport is None or dest is None:
            return False
        transport.sendto(data, dest)
        return True

    # ------------------------------------------------------------------ receiving

    def _rtp_received(self, data: bytes, addr: Address) -> None:
        now = self._clock()
        if self._final:
            if addr != self._locked:
                self.dropped_foreign += 1
                return
            self._deliver(data, addr, now)
            return
        self._learn(data, addr, now)

    def _deliver(self, data: bytes, addr: Address, now: float) -> None:
        if self._rtcp_mux and len(data) >= 2 and 192 <= data[1] <= 223:
            self._rtcp_received(data, addr)
            return
        try:
            pt, seq, ts, ssrc, marker, offset = parse_header_fast(data)
            end = payload_end(data, offset) if data[0] & 0x20 else len(data)
        except RtpParseError:
            self.malformed += 1
            return
        if pt not in self._payload_types:
            self.unexpected_pt += 1
            return
        try:
            self._on_rtp(data, pt, seq, ts, ssrc, marker, offset, end, now)
        except Exception:
            self._handler_failed("RTP")

    def _learn(self, data: bytes, addr: Address, now: float) -> None:
        remote = self._remote
        if remote is None:
            self.dropped_foreign += 1
            return
        locked = self._locked
        if locked is not None:
            if now >= self._provisional_until:
                self._final = True
                self._rtp_received(data, addr)
                return
            if addr == locked:
                self._deliver(data, addr, now)
                return
        from_signalled = addr[0] == remote[0] and addr[1] == remote[1]
        if locked is not None and not from_signalled:
            # A provisional lock yields only to the signalled address.
            self.dropped_foreign += 1
            return
        if self._rtcp_mux and len(data) >= 2 and 192 <= data[1] <= 223:
            if from_signalled:
                self._rtcp_received(data, addr)
            else:
                self.dropped_foreign += 1
            return
        try:
            pt, seq, _ts, ssrc, _marker, _offset = parse_header_fast(data)
        except RtpParseError:
            if from_signalled:
                self.malformed += 1
            else:
                self.dropped_foreign += 1
            return
        if pt not in self._payload_types:
            if from_signalled:
                self.unexpected_pt += 1
            else:
                self.dropped_foreign += 1
            return
        if from_signalled:
            self._lock(addr, final=True)
            self._deliver(data, addr, now)
            return
        # Unknown source, nothing locked yet: probation of two packets in sequence.
        previous = self._candidates.get(addr)
        if previous is not None and previous[0] == ssrc and (previous[1] + 1) & 0xFFFF == seq:
            self._lock(addr, final=False)
            self._provisional_until = now + self.learn_window
            self._deliver(data, addr, now)
            return
        if previous is None and len(self._candidates) >= _MAX_CANDIDATES:
            self._candidates.pop(next(iter(self._candidates)))
        self._candidates[addr] = (ssrc, seq)
        self.dropped_foreign += 1

    def _lock(self, addr: Address, *, final: bool) -> None:
        if self._locked is not None and self._locked != addr:
            self._rtcp_learned = None
        self._locked = addr
        self._dest = addr
        self._final = final
        self._candidates.clear()

    def _rtcp_received(self, data: bytes, addr: Address) -> None:
        source = self._locked
        if source is None and self._remote is not None:
            source = self._remote
        if source is None or addr[0] != source[0]:
            self.dropped_foreign += 1
            return
        now = self._clock()
        try:
            packets = parse_rtcp(data)
        except RtcpParseError:
            self.rtcp_malformed += 1
            return
        if not self._rtcp_mux:
            self._rtcp_learned = addr
        try:
            self._on_rtcp(packets, now)
        except Exception:
            self._handler_failed("RTCP")

    def _handler_failed(self, kind: str) -> None:
        self._handler_errors += 1
        n = self._handler_errors
        if n == 1 or n % 1000 == 0:
            log.exception("%s handler failed on %s:%d (%d times)", kind, self.local_address, self.rtp_port, n)

    @property
    def handler_errors(self) -> int:
        return self._handler_errors
