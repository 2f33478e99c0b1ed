"""Transaction timer values (RFC 3261 17 and table 4, RFC 6026) and a small deadline set.

Public API
----------
``TimerConfig(t1=0.5, t2=4.0, t4=5.0, timer_d_unreliable=32.0)`` (frozen dataclass, seconds)
    Derived durations, ``reliable`` meaning a stream transport (TCP/TLS):

    ======  ===================================  ===========================
    timer   purpose                              value
    ======  ===================================  ===========================
    A       INVITE request retransmit (UDP)      T1, doubling without cap
    B       INVITE transaction timeout           64*T1
    D       wait for response retransmits        ``timer_d_unreliable`` (UDP) / 0
    E       non-INVITE retransmit (UDP)          T1, doubling up to T2
    F       non-INVITE transaction timeout       64*T1
    G       INVITE final response retransmit     T1, doubling up to T2
    H       wait for ACK                         64*T1
    I       wait for ACK retransmits             T4 (UDP) / 0
    J       wait for non-INVITE retransmits      64*T1 (UDP) / 0
    K       wait for response retransmits        T4 (UDP) / 0
    L       INVITE server Accepted linger        64*T1
    M       INVITE client Accepted linger        64*T1
    TRYING  send 100 if the TU has not answered  ``trying_delay`` of the INVITE
                                                 server transaction (17.2.1)
    ======  ===================================  ===========================

    Methods: ``timer_a()``, ``timer_b()``, ``timer_d(reliable)``, ``timer_e()``,
    ``timer_f()``, ``timer_g()``, ``timer_h()``, ``timer_i(reliable)``,
    ``timer_j(reliable)``, ``timer_k(reliable)``, ``timer_l()``, ``timer_m()``.

``TimerName`` enum ``A`` ... ``M`` (value is the letter) and ``TRYING``.

``TimerSet``
    Absolute deadlines keyed by ``TimerName``: ``start(name, deadline)``,
    ``cancel(name)``, ``clear()``, ``deadline(name) -> float | None``,
    ``name in timers``, ``next_deadline() -> float | None``,
    ``due(now) -> list[TimerName]`` (expired timers, earliest first; they stay
    armed until cancelled or restarted).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["TimerConfig", "TimerName", "TimerSet"]


@dataclass(frozen=True)
class TimerConfig:
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d_unreliable: float = 32.0

    def __post_init__(self) -> None:
        if self.t1 <= 0 or self.t2 < self.t1 or self.t4 < 0 or self.timer_d_unreliable < 0:
            raise ValueError("timer values must satisfy 0 < t1 <= t2, t4 >= 0, timer_d >= 0")

    def timer_a(self) -> float:
        return self.t1

    def timer_b(self) -> float:
        return 64 * self.t1

    def timer_d(self, reliable: bool) -> float:
        return 0.0 if reliable else self.timer_d_unreliable

    def timer_e(self) -> float:
        return self.t1

    def timer_f(self) -> float:
        return 64 * self.t1

    def timer_g(self) -> float:
        return self.t1

    def timer_h(self) -> float:
        return 64 * self.t1

    def timer_i(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4

    def timer_j(self, reliable: bool) -> float:
        return 0.0 if reliable else 64 * self.t1

    def timer_k(self, reliable: bool) -> float:
        return 0.0 if reliable else self.t4

    def timer_l(self) -> float:
        return 64 * self.t1

    def timer_m(self) -> float:
        return 64 * self.t1


class TimerName(enum.Enum):
    A = "A"
    B = "B"
    D = "D"
    E = "E"
    F = "F"
    G = "G"
    H = "H"
    I = "I"  # noqa: E741 - the RFC's name
    J = "J"
    K = "K"
    L = "L"
    M = "M"
    TRYING = "TRYING"


class TimerSet:
    """Armed timers of one transaction, as absolute deadlines on the caller's monotonic clock."""

    __slots__ = ("_deadlines",)

    def __init__(self) -> None:
        self._deadlines: dict[TimerName, float] = {}

    def start(self, name: TimerName, deadline: float) -> None:
        self._deadlines[name] = deadline

    def cancel(self, name: TimerName) -> None:
        self._deadlines.pop(name, None)

    def clear(self) -> None:
        self._deadlines.clear()

    def deadline(self, name: TimerName) -> float | None:
        return self._deadlines.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._deadlines

    def next_deadline(self) -> float | None:
        return min(self._deadlines.values(), default=None)

    def due(self, now: float) -> list[TimerName]:
        expired = [(d, n.value, n) for n, d in self._deadlines.items() if d <= now]
        return [n for _, _, n in sorted(expired)]
