"""Which SIP TCP connections the gateway keeps, and for how long (sans-I/O).

The asyncio transport (``gateway.sip.transport``) owns the sockets and the clock. It asks
``TcpConnections.admit`` about every inbound connection as it is accepted, reports what
happens on every connection, and closes whatever ``expire`` returns. Connections are
identified by a key the transport chooses (any hashable value, one per connection).
``now`` is monotonic seconds.

So that no one can starve the process of file descriptors, an inbound connection costs
its sender something: it is limited per source address and in total, and it must carry a
valid SIP message soon or it is closed. Trunk addresses (``is_trusted``) are exempt from
the limits, so an attack cannot lock a carrier out, and outbound connections (the ones
the gateway opens to its trunks) are never refused or counted.

Policy
------
::

    new inbound connection (checked in this order)
      not a trunk, accept == "trunks"                   -> refused  not_trunk
      not a trunk, max_per_source from its address open -> refused  source_limit
      not a trunk, max_connections open                 -> refused  total_limit
      otherwise                                         -> AWAITING
    new outbound connection                             -> ESTABLISHED
    AWAITING     a valid SIP message                    -> ESTABLISHED
    AWAITING     first_message_timeout since accepted   -> closed   no_sip
                 (bytes and CRLF keep-alives do not help: only a SIP message does)
    ESTABLISHED  traffic either way (RFC 5626 CRLF keep-alives included) -> idle time restarts
    ESTABLISHED  idle_timeout without traffic, the connection carries a call
                 (``in_use(peer)``)                     -> kept, asked again an idle_timeout later
    ESTABLISHED  idle_timeout without traffic, no call  -> closed   idle

What a "valid SIP message" is, the transport learns from the user agent: one it parsed
and accepted from that source (a trunk's, or one belonging to one of our calls).

``Throttle`` bounds how often the same kind of event is logged: at most once per key
per interval, with the number of events held back since the last report.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "CLOSE_REASONS",
    "REFUSAL_REASONS",
    "Address",
    "TcpConnections",
    "TcpLimits",
    "Throttle",
]

Address = tuple[str, int]
Accept = Literal["any", "trunks"]

REFUSAL_REASONS: Final = ("not_trunk", "source_limit", "total_limit")
# ``bad_stream`` is the transport's own: bytes that cannot be framed as SIP.
CLOSE_REASONS: Final = ("no_sip", "idle", "bad_stream")


@dataclass(frozen=True)
class TcpLimits:
    max_connections: int = 1024  # inbound, from addresses that are not trunks
    max_per_source: int = 32  # inbound, from one address that is not a trunk
    first_message_timeout: float = 10.0  # seconds an inbound connection has for its first SIP message
    idle_timeout: float = 300.0  # seconds without traffic before a connection without a call is closed
    accept: Accept = "any"  # "trunks": inbound connections from trunk addresses only

    def __post_init__(self) -> None:
        if self.max_connections < 1 or self.max_per_source < 1:
            raise ValueError("connection limits must be at least 1")
        if self.first_message_timeout <= 0 or self.idle_timeout <= 0:
            raise ValueError("timeouts must be positive")


@dataclass(eq=False)
class _Conn:
    peer: Address
    inbound: bool
    counted: bool  # held against the limits (inbound, not from a trunk)
    established: bool  # a valid SIP message went over it (or we opened it)
    since: float  # accepted at (AWAITING), last traffic (ESTABLISHED)


class TcpConnections:
    """The connection table and its rules; see the module docstring."""

    def __init__(self, limits: TcpLimits, is_trusted: Callable[[str], bool]) -> None:
        self.limits = limits
        self._is_trusted = is_trusted
        self._conns: dict[Hashable, _Conn] = {}
        self._per_source: dict[str, int] = {}
        self._counted = 0
        self._inbound = 0

    @property
    def inbound(self) -> int:
        return self._inbound

    @property
    def outbound(self) -> int:
        return len(self._conns) - self._inbound

    @property
    def counted(self) -> int:
        """Inbound connections held against ``max_connections``."""
        return self._counted

    def admit(self, key: Hashable, peer: Address, now: float) -> str | None:
        """A connection was accepted: None to keep it, else the reason to close it at once."""
        trunk = self._trusted(peer[0])
        if not trunk:
            if self.limits.accept == "trunks":
                return "not_trunk"
            if self._per_source.get(peer[0], 0) >= self.limits.max_per_source:
                return "source_limit"
            if self._counted >= self.limits.max_connections:
                return "total_limit"
            self._per_source[peer[0]] = self._per_source.get(peer[0], 0) + 1
            self._counted += 1
        self._inbound += 1
        self._conns[key] = _Conn(peer, inbound=True, counted=not trunk, established=False, since=now)
        return None

    def opened(self, key: Hashable, peer: Address, now: float) -> None:
        """We connected to `peer`: an outbound connection, outside the limits."""
        self._conns[key] = _Conn(peer, inbound=False, counted=False, established=True, since=now)

    def traffic(self, key: Hashable, now: float) -> None:
        """Octets went over the connection, either way (keep-alives included)."""
        conn = self._conns.get(key)
        if conn is not None and conn.established:
            conn.since = now

    def valid_message(self, key: Hashable, now: float) -> None:
        """The user agent accepted a SIP message that arrived on this connection."""
        conn = self._conns.get(key)
        if conn is not None:
            conn.established = True
            conn.since = now

    def closed(self, key: Hashable) -> None:
        """The connection is gone (whoever closed it). Unknown keys are ignored."""
        conn = self._conns.pop(key, None)
        if conn is None:
            return
        if conn.inbound:
            self._inbound -= 1
        if conn.counted:
            self._counted -= 1
            left = self._per_source[conn.peer[0]] - 1
            if left:
                self._per_source[conn.peer[0]] = left
            else:
                del self._per_source[conn.peer[0]]

    def expire(self, now: float, in_use: Callable[[Address], bool]) -> list[tuple[Hashable, str]]:
        """The connections to close now, with the reason. They stay in the table until ``closed``."""
        due: list[tuple[Hashable, str]] = []
        for key, conn in self._conns.items():
            if not conn.established:
                if now - conn.since >= self.limits.first_message_timeout:
                    due.append((key, "no_sip"))
            elif now - conn.since >= self.limits.idle_timeout:
                if in_use(conn.peer):
                    conn.since = now  # a call rests on it: ask again after another idle period
                else:
                    due.append((key, "idle"))
        return due

    def _trusted(self, ip: str) -> bool:
        try:
            return bool(self._is_trusted(ip))
        except Exception:
            return False  # a broken trust check must not open the door


class Throttle:
    """At most one report per key every `interval` seconds; counts what it held back."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def report(self, key: str, now: float) -> int | None:
        """None: stay quiet. Otherwise report now; the number is how many were held back since."""
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)
