"""The agent bridge's life cycle: one state, changed only along this table.

``TRANSITIONS`` lists, for every :class:`BridgeState`, the states it may move to;
a pair that is not there is a bug in the bridge, and :func:`check_transition`
raises :class:`InvalidTransition` for it rather than let the bridge drift into a
state nobody planned for. Transitions happen on call events (connect, answer, a
drop, stop), never per media frame.

The usual life: NEW, CONNECTING while the call rings, CONNECTED, STREAMING from
the answer; a drop goes to RECONNECTING and back to CONNECTED (then STREAMING at
once); stop() ends every life in STOPPING, then STOPPED. ENDED, LOST and
UNAVAILABLE say why an agent went quiet before that.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Final

__all__ = ["TRANSITIONS", "BridgeState", "InvalidTransition", "check_transition"]


class BridgeState(StrEnum):
    NEW = "new"  # built; connect() not called yet
    CONNECTING = "connecting"  # the first connection is being opened (while the call rings)
    CONNECTED = "connected"  # open; `start` not sent, because the call is not answered yet
    STREAMING = "streaming"  # `start` sent on this connection: audio flows both ways
    RECONNECTING = "reconnecting"  # the connection dropped; trying again within the budget
    ENDED = "ended"  # the agent hung up and closed; its last audio still plays
    LOST = "lost"  # reconnection budget spent, or closed for violations: silent from now on
    UNAVAILABLE = "unavailable"  # the first connection failed (AgentUnavailable)
    STOPPING = "stopping"  # stop(): `stop` sent, the agent's grace period runs
    STOPPED = "stopped"


S = BridgeState
TRANSITIONS: Final[Mapping[BridgeState, frozenset[BridgeState]]] = {
    S.NEW: frozenset({S.CONNECTING, S.STOPPING}),
    S.CONNECTING: frozenset({S.CONNECTED, S.UNAVAILABLE, S.STOPPING}),
    S.CONNECTED: frozenset({S.STREAMING, S.RECONNECTING, S.ENDED, S.LOST, S.STOPPING}),
    S.STREAMING: frozenset({S.RECONNECTING, S.ENDED, S.LOST, S.STOPPING}),
    S.RECONNECTING: frozenset({S.CONNECTED, S.LOST, S.STOPPING}),
    S.ENDED: frozenset({S.STOPPING}),
    S.LOST: frozenset({S.STOPPING}),
    S.UNAVAILABLE: frozenset({S.STOPPING}),
    S.STOPPING: frozenset({S.STOPPED}),
    S.STOPPED: frozenset(),
}
del S


class InvalidTransition(RuntimeError):
    """The bridge tried a transition its table does not allow (a bug in the bridge, not the agent's fault)."""

    def __init__(self, old: BridgeState, new: BridgeState) -> None:
        super().__init__(f"agent bridge cannot go from {old.value} to {new.value}")
        self.old = old
        self.new = new


def check_transition(old: BridgeState, new: BridgeState) -> None:
    if new not in TRANSITIONS[old]:
        raise InvalidTransition(old, new)
