"""RTP port pool: each call takes an even port for RTP and the next odd one for RTCP."""

from __future__ import annotations

from collections import deque


class PortsExhausted(Exception):
    """No free RTP port: the call must fail at once rather than wait."""


class PortPool:
    def __init__(self, port_min: int, port_max: int) -> None:
        first = port_min + (port_min % 2)
        # Round-robin, so a just-freed port is not reused at once
        # (late packets of the previous call would land in the new one).
        self._free = deque(range(first, port_max, 2))
        self._used: set[int] = set()

    def allocate(self) -> int:
        if not self._free:
            raise PortsExhausted("no free RTP port in the configured range")
        port = self._free.popleft()
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        if port in self._used:
            self._used.remove(port)
            self._free.append(port)

    @property
    def in_use(self) -> int:
        return len(self._used)

    @property
    def available(self) -> int:
        return len(self._free)
