"""The asyncio shell around the sans-I/O user agent: sockets in, timers, outputs out.

Every input (datagram, stream message, timer, API command) is handed to `SipUserAgent`
with the loop's monotonic time, then its outputs are drained: bytes go to the
transports, call events to the callback. One timer handle tracks the UA's next deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gateway.outcome import HangupCause
from gateway.sip.connections import TcpLimits
from gateway.sip.digest import DigestCredentials
from gateway.sip.errors import SipFramingError
from gateway.sip.transport import Address, NoMetrics, SipMetrics, SipTransports, Transport
from gateway.sip.useragent import (
    CallEvent,
    LegSnapshot,
    OutboundCallParams,
    SipUserAgent,
    Transmit,
    UaConfig,
)

log = logging.getLogger("gateway.sip")

OnCallEvent = Callable[[CallEvent], None]


class SipStack:
    def __init__(
        self,
        config: UaConfig,
        bind_host: str,
        on_event: OnCallEvent,
        tcp_limits: TcpLimits | None = None,
        metrics: SipMetrics | None = None,
    ) -> None:
        self._config = config
        self._metrics: SipMetrics = metrics or NoMetrics()
        self._bind_host = bind_host
        self._on_event = on_event
        self._transports = SipTransports(
            bind_host,
            config.udp_port,
            config.tcp_port,
            self._on_data,
            self._on_error,
            on_framing_error=self._on_framing_error,
            max_message_size=config.max_message_size,
            tcp_limits=tcp_limits,
            is_trusted=config.is_trusted,
            in_use=self._tcp_peer_in_use,
            metrics=self._metrics,
        )
        self.ua: SipUserAgent | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def udp_port(self) -> int | None:
        return self._transports.udp_port

    @property
    def tcp_port(self) -> int | None:
        return self._transports.tcp_port

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._transports.start()
        # Port 0 in the configuration means "any": the UA must advertise the real ones.
        from dataclasses import replace

        self._config = replace(
            self._config, udp_port=self._transports.udp_port, tcp_port=self._transports.tcp_port
        )
        self.ua = SipUserAgent(self._config)
        log.info(
            "sip listening",
            extra={
                "host": self._bind_host,
                "udp": self._transports.udp_port,
                "tcp": self._transports.tcp_port,
            },
        )

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        await self._transports.stop()

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def place_call(self, params: OutboundCallParams) -> None:
        assert self.ua is not None
        self.ua.place_call(params, self._now())
        self._flush()

    def release(self, call_ref: str, snapshot: LegSnapshot, credentials: DigestCredentials | None) -> None:
        assert self.ua is not None
        self.ua.release(call_ref, snapshot, credentials, self._now())
        self._flush()

    def hangup(self, call_ref: str, cause: HangupCause) -> None:
        assert self.ua is not None
        self.ua.hangup(call_ref, cause, self._now())
        self._flush()

    def _on_data(self, data: bytes, source: Address, transport: Transport) -> bool:
        if self.ua is None:
            return False
        if data.startswith(b"SIP/2.0 ") and data[8:11].isdigit():
            self._metrics.sip_response(int(data[8:11]))
        accepted = False
        try:
            accepted = self.ua.receive(data, source, transport, self._now())
        except Exception:  # the UA must never take the process down
            log.exception(
                "sip receive failed", extra={"source": f"{source[0]}:{source[1]}", "transport": transport}
            )
        self._flush()
        return accepted

    def _tcp_peer_in_use(self, peer: Address) -> bool:
        return self.ua is not None and self.ua.uses_tcp_peer(peer)

    def _on_framing_error(self, error: SipFramingError, source: Address) -> None:
        if self.ua is None:
            return
        self.ua.framing_error(error, source, "tcp", self._now())
        self._flush()

    def _on_error(self, destination: Address, transport: Transport) -> None:
        if self.ua is None:
            return
        self.ua.transport_error(destination, transport, self._now())
        self._flush()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.ua is None:
            return
        try:
            self.ua.on_timer(self._now())
        except Exception:
            log.exception("sip timer failed")
        self._flush()

    def _flush(self) -> None:
        assert self.ua is not None
        for out in self.ua.pop_outputs():
            if isinstance(out, Transmit):
                self._transports.send(out.data, out.destination, out.transport)
            else:
                try:
                    self._on_event(out)
                except Exception:
                    log.exception("call event handler failed", extra={"call_id": out.call_ref})
        deadline = self.ua.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            assert self._loop is not None
            self._timer = self._loop.call_at(deadline, self._on_timer)
