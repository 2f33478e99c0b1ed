"""Dialogs of a user agent client (RFC 3261 section 12) and where their requests go.

The gateway only places calls, so every dialog here is created by a response to an
INVITE we sent: early by a tagged 1xx, confirmed by a 2xx.

Public API
----------
``Address = tuple[str, int]``; ``Transport = Literal["udp", "tcp"]``.

``DialogError(SipError)`` - a response cannot create a dialog (no usable From/To).

``Dialog`` (mutable dataclass) - the dialog state of 12.1.2:
``call_id``, ``local_tag``, ``remote_tag``, ``local_uri`` / ``remote_uri``
(``NameAddr`` with the tags, used as From / To), ``local_seq``, ``remote_seq``
(None until the far end sends a request), ``remote_target`` (``SipUri``),
``route_set`` (``list[NameAddr]``).

* ``Dialog.from_uac_response(request, response)`` - 12.1.2: route set is the
  response's Record-Route reversed, remote target its Contact (the Request-URI when
  the Contact is missing or not a SIP URI), remote tag its To tag, local sequence
  number the request's CSeq.
* ``matches(request)`` - Call-ID, To tag = local tag and From tag = remote tag.
* ``strict_routing`` - the first route lacks ``;lr`` (an RFC 2543 strict router).
* ``request_target() -> (request_uri, routes)`` - 12.2.1.1: loose routing keeps the
  remote target as Request-URI and the route set as Route; strict routing puts the
  first route in the Request-URI and appends the remote target to the Route list.
* ``next_hop(default_transport, fallback) -> (Address, Transport)`` - first Route
  (loose) or the Request-URI (strict, or no route set), via ``uri_next_hop``.
* ``new_request(method, *, via, contact=None, headers=(), body=b"", content_type=None)``
  - a request within the dialog with the next local CSeq.
* ``ack(invite, *, via)`` - the ACK for a 2xx (13.2.2.4): CSeq number of the INVITE,
  routed like any in-dialog request, with the INVITE's credentials.
* ``accept_remote_cseq(request) -> bool`` - 12.2.2: False (answer 500) when the CSeq is
  lower than the last one seen, otherwise records it.
* ``refresh_target(message)`` - a target refresh (re-INVITE, UPDATE, their 2xx) replaces
  the remote target with its Contact.

``uri_next_hop(uri, default_transport) -> (Address, Transport) | None`` - host (or
``maddr``) and port (5060, 5061 for sips) of a SIP URI; its ``transport`` parameter when
it is udp or tcp, else ``default_transport``. None for URIs that cannot be routed.
Hosts may be names: the shell resolves them (RFC 3263 A/AAAA lookup).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from gateway.sip.errors import SipError, SipParseError
from gateway.sip.headers import NameAddr, canonical_name
from gateway.sip.message import SipMessage, SipRequest, SipResponse, make_request
from gateway.sip.uri import SipUri

__all__ = ["Address", "Dialog", "DialogError", "Transport", "uri_next_hop"]

Address = tuple[str, int]
Transport = Literal["udp", "tcp"]

_CREDENTIAL_HEADERS = ("Authorization", "Proxy-Authorization")
# Parameters a Request-URI may not carry (RFC 3261 19.1.1 table 1); URI headers go too.
_NOT_IN_REQUEST_URI = ("method",)


class DialogError(SipError):
    """A message cannot create or address a dialog."""


def uri_next_hop(uri: SipUri, default_transport: Transport) -> tuple[Address, Transport] | None:
    if not uri.is_sip or not uri.host:
        return None
    host = uri.maddr or uri.host_address
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    port = uri.port if uri.port is not None else (5061 if uri.is_secure else 5060)
    wanted = uri.transport
    transport: Transport = default_transport
    if wanted == "udp":
        transport = "udp"
    elif wanted == "tcp":
        transport = "tcp"
    return (host, port), transport


def _routable(uri: SipUri) -> SipUri:
    out = uri.copy()
    out.headers = []
    for name in _NOT_IN_REQUEST_URI:
        out.params.remove(name)
    return out


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: NameAddr
    remote_uri: NameAddr
    local_seq: int
    remote_target: SipUri
    route_set: list[NameAddr] = field(default_factory=list)
    remote_seq: int | None = None

    @classmethod
    def from_uac_response(cls, request: SipRequest, response: SipResponse) -> Dialog:
        try:
            local = request.from_
            remote = response.to
            record_route = response.record_route
            contact = response.contact
        except SipParseError as exc:
            raise DialogError(f"response cannot create a dialog: {exc.reason}") from exc
        if local.tag is None:
            raise DialogError("request has no From tag")
        target = (
            contact.uri if contact is not None and contact.uri.is_sip and contact.uri.host else request.uri
        )
        return cls(
            call_id=request.call_id,
            local_tag=local.tag,
            remote_tag=remote.tag or "",
            local_uri=local,
            remote_uri=remote,
            local_seq=request.cseq.number,
            remote_target=_routable(target),
            route_set=[r.copy() for r in reversed(record_route)],
        )

    def matches(self, request: SipRequest) -> bool:
        return (
            request.call_id == self.call_id
            and request.to_tag == self.local_tag
            and (request.from_tag or "") == self.remote_tag
        )

    @property
    def strict_routing(self) -> bool:
        return bool(self.route_set) and not self.route_set[0].uri.lr

    def request_target(self) -> tuple[SipUri, list[NameAddr]]:
        if not self.route_set:
            return self.remote_target.copy(), []
        if not self.strict_routing:
            return self.remote_target.copy(), [r.copy() for r in self.route_set]
        first, rest = self.route_set[0], self.route_set[1:]
        routes = [r.copy() for r in rest]
        routes.append(NameAddr(uri=self.remote_target.copy()))
        return _routable(first.uri), routes

    def next_hop(
        self, default_transport: Transport, fallback: tuple[Address, Transport]
    ) -> tuple[Address, Transport]:
        request_uri, routes = self.request_target()
        uri = request_uri if self.strict_routing or not routes else routes[0].uri
        return uri_next_hop(uri, default_transport) or fallback

    def new_request(
        self,
        method: str,
        *,
        via: str,
        contact: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        self.local_seq += 1
        return self._build(method, self.local_seq, via, contact, headers, body, content_type)

    def ack(self, invite: SipRequest, *, via: str) -> SipRequest:
        credentials = [(n, v) for n, v in invite.headers if canonical_name(n) in _CREDENTIAL_HEADERS]
        return self._build("ACK", invite.cseq.number, via, None, credentials, b"", None)

    def _build(
        self,
        method: str,
        cseq: int,
        via: str,
        contact: str | None,
        headers: Iterable[tuple[str, str]],
        body: bytes,
        content_type: str | None,
    ) -> SipRequest:
        request_uri, routes = self.request_target()
        return make_request(
            method,
            request_uri,
            from_=self.local_uri,
            to=self.remote_uri,
            call_id=self.call_id,
            cseq=cseq,
            via=via,
            contact=contact,
            route=routes,
            headers=headers,
            body=body,
            content_type=content_type,
        )

    def accept_remote_cseq(self, request: SipRequest) -> bool:
        number = request.cseq.number
        if self.remote_seq is not None and number < self.remote_seq:
            return False
        self.remote_seq = number
        return True

    def refresh_target(self, message: SipMessage) -> None:
        try:
            contact = message.contact
        except SipParseError:
            return
        if contact is not None and contact.uri.is_sip and contact.uri.host:
            self.remote_target = _routable(contact.uri)
