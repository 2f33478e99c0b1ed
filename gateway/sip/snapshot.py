"""What it takes to end a call, in a form that outlives the process that placed it.

``OutboundCall`` reports a ``LegSnapshot`` whenever this changes: the INVITE it sent (a CANCEL
is built from it while the call rings), then the confirmed dialog (a BYE is built from it).
The gateway stores the latest with the call; after a crash, ``gateway.sip.recovery`` ends the
call from it. Only what RFC 3261 needs is kept: no SDP, no credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gateway.sip.dialog import Address, Dialog, Transport
from gateway.sip.errors import SipError
from gateway.sip.headers import NameAddr
from gateway.sip.message import SipRequest, make_request, parse_message
from gateway.sip.uri import SipUri

__all__ = ["LegSnapshot", "SnapshotError"]


class SnapshotError(SipError, ValueError):
    """A stored snapshot cannot be read back."""


@dataclass(frozen=True)
class LegSnapshot:
    """What ending a call takes, in a form that survives the process (``to_json``/``from_json``).

    ``phase`` "inviting": ``invite`` is the pending INVITE (its headers only).
    ``phase`` "confirmed": ``dialog`` holds the dialog's state (12.1.2).
    ``destination``/``transport``: where the INVITE went (the trunk); a dialog's requests go
    to its next hop, which ``Dialog.next_hop`` works out from the route set and target."""

    phase: Literal["inviting", "confirmed"]
    call_id: str
    destination: Address
    transport: Transport
    invite: str | None = None
    dialog: dict[str, Any] | None = None

    @classmethod
    def inviting(cls, invite: SipRequest, destination: Address, transport: Transport) -> LegSnapshot:
        # The headers a CANCEL and the ACK of a failure are built from (9.1, 17.1.1.3).
        kept = make_request(
            "INVITE",
            invite.uri,
            from_=invite._required("From"),
            to=invite._required("To"),
            call_id=invite.call_id,
            cseq=invite.cseq.number,
            via=invite._required("Via"),
            max_forwards=invite.max_forwards if invite.max_forwards is not None else 70,
            route=invite.headers.get_all("Route"),
        )
        return cls("inviting", invite.call_id, destination, transport, invite=bytes(kept).decode("utf-8", "replace"))

    @classmethod
    def confirmed(cls, dialog: Dialog, destination: Address, transport: Transport) -> LegSnapshot:
        state = {
            "local_tag": dialog.local_tag,
            "remote_tag": dialog.remote_tag,
            "local_uri": str(dialog.local_uri),
            "remote_uri": str(dialog.remote_uri),
            "local_seq": dialog.local_seq,
            "remote_target": str(dialog.remote_target),
            "route_set": [str(r) for r in dialog.route_set],
        }
        return cls("confirmed", dialog.call_id, destination, transport, dialog=state)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "phase": self.phase,
            "call_id": self.call_id,
            "destination": [self.destination[0], self.destination[1]],
            "transport": self.transport,
        }
        if self.invite is not None:
            out["invite"] = self.invite
        if self.dialog is not None:
            out["dialog"] = self.dialog
        return out

    @classmethod
    def from_json(cls, data: Any) -> LegSnapshot:
        try:
            phase = data["phase"]
            host, port = data["destination"]
            transport = data["transport"]
            if phase not in ("inviting", "confirmed") or transport not in ("udp", "tcp"):
                raise SnapshotError(f"unknown phase or transport: {phase!r} {transport!r}")
            snapshot = cls(phase, str(data["call_id"]), (str(host), int(port)), transport,
                           invite=data.get("invite"), dialog=data.get("dialog"))
            if phase == "inviting":
                snapshot.invite_request()
            else:
                snapshot.dialog_state()
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"unreadable leg snapshot: {exc}") from None
        return snapshot

    def invite_request(self) -> SipRequest:
        if self.invite is None:
            raise SnapshotError("no INVITE in the snapshot")
        message = parse_message(self.invite.encode("utf-8"))
        if not isinstance(message, SipRequest) or message.method != "INVITE":
            raise SnapshotError("the snapshot's INVITE is not an INVITE")
        return message

    def dialog_state(self) -> Dialog:
        d = self.dialog
        if d is None:
            raise SnapshotError("no dialog in the snapshot")
        return Dialog(
            call_id=self.call_id,
            local_tag=str(d["local_tag"]),
            remote_tag=str(d["remote_tag"]),
            local_uri=NameAddr.parse(d["local_uri"], "From"),
            remote_uri=NameAddr.parse(d["remote_uri"], "To"),
            local_seq=int(d["local_seq"]),
            remote_target=SipUri.parse(d["remote_target"]),
            route_set=[NameAddr.parse(r, "Route") for r in d["route_set"]],
        )


