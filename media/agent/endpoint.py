"""AgentEndpoint: where one AI agent listens and how the bridge talks to it.

The data plane's own description of an agent. The control plane validates what an
operator configured (``gateway.config.AgentConfig``) and hands the bridge this value
(``AgentConfig.endpoint()``), so ``media/`` never depends on the configuration model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

__all__ = ["PROTOCOLS", "AgentEndpoint", "AgentProtocolName"]

AgentProtocolName = Literal["orbit-voice", "twilio"]
PROTOCOLS: Final[frozenset[str]] = frozenset({"orbit-voice", "twilio"})


@dataclass(frozen=True, slots=True)
class AgentEndpoint:
    """One agent's websocket: URL, wire format, sample rate, extra handshake headers,
    and how long to wait for it (connect, reconnect, stop)."""

    id: str
    url: str
    protocol: AgentProtocolName = "orbit-voice"
    sample_rate: int = 16000
    headers: Mapping[str, str] = field(default_factory=dict)
    connect_timeout_seconds: float = 5.0
    reconnect_attempts: int = 2
    stop_grace_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"unknown agent protocol {self.protocol!r}")
        if self.protocol == "twilio" and self.sample_rate != 8000:
            raise ValueError("protocol 'twilio' carries 8 kHz mu-law: sample_rate must be 8000")
        if self.connect_timeout_seconds <= 0:
            raise ValueError("connect_timeout_seconds must be positive")
        if self.reconnect_attempts < 0 or self.stop_grace_seconds < 0:
            raise ValueError("reconnect_attempts and stop_grace_seconds must not be negative")
        # A read-only copy: the caller's dict may change, this value must not.
        object.__setattr__(self, "headers", MappingProxyType(dict(self.headers)))
