"""A far-end simulator and fake clock for driving SipUserAgent with bytes.

The SIP unit tests place calls through it; tests/unit/sip/test_sip_harness.py checks it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.sip.digest import DigestCredentials
from gateway.sip.headers import NameAddr
from gateway.sip.message import (
    SipMessage,
    SipRequest,
    SipResponse,
    make_request,
    make_response,
    new_branch,
    parse_message,
)
from gateway.sip.sdp import SessionDescription
from gateway.sip.timers import TimerConfig
from gateway.sip.uri import SipUri
from gateway.sip.useragent import (
    CallEventBody,
    CallOutcome,
    Ended,
    LegSnapshot,
    LegUpdated,
    LocalMedia,
    OutboundCallParams,
    Released,
    SipUserAgent,
    Transmit,
    UaConfig,
)

LOCAL_HOST = "198.51.100.7"
TRUNK_IP = "203.0.113.10"
TRUNK = (TRUNK_IP, 5060)
FAR_IP = "203.0.113.50"
FAR_CONTACT = f"<sip:callee@{FAR_IP}:5070>"
FAR = (FAR_IP, 5070)
SCANNER = ("192.0.2.66", 5060)
T1 = 0.5


def answer_sdp(
    *,
    address: str = FAR_IP,
    port: int = 40000,
    formats: str = "0 101",
    direction: str = "sendrecv",
    version: int = 1,
) -> bytes:
    lines = [
        "v=0",
        f"o=- 4242 {version} IN IP4 {address}",
        "s=-",
        f"c=IN IP4 {address}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {formats}",
    ]
    for pt in formats.split():
        if pt == "0":
            lines.append("a=rtpmap:0 PCMU/8000")
        elif pt == "8":
            lines.append("a=rtpmap:8 PCMA/8000")
        elif pt == "18":
            lines.append("a=rtpmap:18 G729/8000")
        elif pt == "101":
            lines.append("a=rtpmap:101 telephone-event/8000")
            lines.append("a=fmtp:101 0-16")
    lines.append("a=ptime:20")
    lines.append(f"a={direction}")
    return ("\r\n".join(lines) + "\r\n").encode()


def make_params(**overrides: Any) -> OutboundCallParams:
    base = OutboundCallParams(
        call_ref="call_1",
        request_uri=SipUri.parse("sip:+14155552671@carrier.example.com:5060;transport=udp"),
        destination=TRUNK,
        transport="udp",
        from_uri=SipUri.parse(f"sip:+12025551234@{LOCAL_HOST}"),
        to_uri=SipUri.parse("sip:+14155552671@carrier.example.com"),
        local_media=LocalMedia(address=LOCAL_HOST, rtp_port=20000),
        credentials=None,
        ring_timeout=60.0,
    )
    return replace(base, **overrides)


CREDENTIALS = DigestCredentials("gwuser", "s3cret")


@dataclass
class Sent:
    message: SipMessage
    destination: tuple[str, int]
    transport: str

    @property
    def request(self) -> SipRequest:
        assert isinstance(self.message, SipRequest), self.message
        return self.message

    @property
    def response(self) -> SipResponse:
        assert isinstance(self.message, SipResponse), self.message
        return self.message


@dataclass
class Step:
    sent: list[Sent] = field(default_factory=list)
    events: list[CallEventBody] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    # LegUpdated events apart: the others tell the call's story, these only what ending it takes.
    legs: list[LegSnapshot] = field(default_factory=list)

    def requests(self, method: str | None = None) -> list[SipRequest]:
        return [
            s.request
            for s in self.sent
            if isinstance(s.message, SipRequest) and (method is None or s.message.method == method)
        ]

    def responses(self) -> list[SipResponse]:
        return [s.response for s in self.sent if isinstance(s.message, SipResponse)]

    def one(self, method: str) -> SipRequest:
        found = self.requests(method)
        assert len(found) == 1, f"expected one {method}, sent {[m.message.start_line() for m in self.sent]}"
        return found[0]

    def sent_to(self, method: str) -> Sent:
        found = [s for s in self.sent if isinstance(s.message, SipRequest) and s.message.method == method]
        assert len(found) == 1
        return found[0]

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events]

    def __iadd__(self, other: Step) -> Step:
        self.sent += other.sent
        self.events += other.events
        self.refs += other.refs
        self.legs += other.legs
        return self


class Harness:
    def __init__(
        self,
        *,
        trusted: Iterable[str] = (TRUNK_IP,),
        udp_port: int | None = 5060,
        tcp_port: int | None = 5060,
        timers: TimerConfig | None = None,
        max_message_size: int = 65536,
    ) -> None:
        trusted_set = set(trusted)
        self.ua = SipUserAgent(
            UaConfig(
                local_host=LOCAL_HOST,
                udp_port=udp_port,
                tcp_port=tcp_port,
                user_agent="orbit-test",
                timers=timers or TimerConfig(),
                is_trusted=lambda ip: ip in trusted_set,
                max_message_size=max_message_size,
            )
        )
        self.now = 0.0
        self.invite: SipRequest | None = None

    # -- driving
    def drain(self) -> Step:
        step = Step()
        for out in self.ua.pop_outputs():
            if isinstance(out, Transmit):
                step.sent.append(Sent(parse_message(out.data), out.destination, out.transport))
            elif isinstance(out.event, LegUpdated):
                step.legs.append(out.event.snapshot)
            else:
                step.events.append(out.event)
                step.refs.append(out.call_ref)
        return step

    def place(self, **overrides: Any) -> Step:
        self.ua.place_call(make_params(**overrides), self.now)
        step = self.drain()
        invites = step.requests("INVITE")
        if invites:
            self.invite = invites[-1]
        return step

    def feed(
        self, message: SipMessage | bytes, source: tuple[str, int] = TRUNK, transport: str = "udp"
    ) -> Step:
        data = message if isinstance(message, bytes) else bytes(message)
        self.ua.receive(data, source, transport, self.now)  # type: ignore[arg-type]
        return self.drain()

    def advance(self, seconds: float) -> Step:
        target = self.now + seconds
        step = Step()
        while True:
            deadline = self.ua.next_deadline()
            if deadline is None or deadline > target:
                break
            self.now = max(self.now, deadline)
            self.ua.on_timer(self.now)
            step += self.drain()
        self.now = target
        return step

    def hangup(self, cause: Any, call_ref: str = "call_1") -> Step:
        self.ua.hangup(call_ref, cause, self.now)
        return self.drain()

    # -- the far end
    def respond(
        self,
        status: int,
        *,
        request: SipRequest | None = None,
        to_tag: str | None = "callee1",
        contact: str | None = FAR_CONTACT,
        record_route: Iterable[str] = (),
        sdp: bytes | None = None,
        headers: Iterable[tuple[str, str]] = (),
        reason: str | None = None,
    ) -> SipResponse:
        req = request or self.invite
        assert req is not None
        all_headers = [("Record-Route", rr) for rr in record_route]
        if contact is not None and status < 300 and status > 100:
            all_headers.append(("Contact", contact))
        all_headers.extend(headers)
        response = make_response(
            req,
            status,
            reason,
            to_tag=to_tag if status > 100 else None,
            headers=all_headers,
            body=sdp or b"",
            content_type="application/sdp" if sdp else None,
        )
        # make_response copies Record-Route from the request; a proxy adds its own here.
        return response

    def answer(self, **kwargs: Any) -> Step:
        kwargs.setdefault("sdp", answer_sdp())
        return self.feed(self.respond(200, **kwargs))

    def request(
        self,
        method: str,
        cseq: int,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        to_tag: str | None = None,
        from_tag: str = "callee1",
        call_id: str | None = None,
        branch: str | None = None,
        via_host: str = f"{FAR_IP}:5070",
    ) -> SipRequest:
        """A request from the far end within the dialog of the current INVITE."""
        invite = self.invite
        assert invite is not None
        our_tag = invite.from_tag if to_tag is None else to_tag
        contact_uri = invite.contact.uri if invite.contact is not None else invite.uri
        return make_request(
            method,
            contact_uri.copy(),
            from_=f"<sip:+14155552671@carrier.example.com>;tag={from_tag}",
            to=NameAddr(uri=invite.from_.uri.copy()).with_tag(our_tag)
            if our_tag
            else f"<{invite.from_.uri}>",
            call_id=call_id or invite.call_id,
            cseq=cseq,
            via=f"SIP/2.0/UDP {via_host};branch={branch or new_branch()}",
            contact=FAR_CONTACT,
            headers=headers,
            body=body,
            content_type=content_type,
        )

    def answered_call(self, **answer_kwargs: Any) -> Step:
        step = self.place()
        step += self.feed(self.respond(100))
        step += self.feed(self.respond(180))
        step += self.answer(**answer_kwargs)
        return step


# -- checks the tests share


def ended(step: Step) -> CallOutcome:
    outcomes = [e.outcome for e in step.events if isinstance(e, Ended)]
    assert len(outcomes) == 1, step.events
    return outcomes[0]


def released_after(h: Harness, seconds: float = 40.0, prior: Step | None = None) -> None:
    """Released comes (in ``prior`` or within ``seconds``), once, and the call is forgotten."""
    step = h.advance(seconds)
    events = (prior.events if prior else []) + step.events
    assert sum(isinstance(e, Released) for e in events) == 1, events
    assert not h.ua.has_call("call_1")
    assert h.ua.next_deadline() is None


def sdp_of(body: bytes) -> SessionDescription:
    return SessionDescription.parse(body)


def sdp_request(h: Harness, method: str, cseq: int, **sdp_kwargs: Any) -> tuple[Step, SipRequest]:
    request = h.request(method, cseq, body=answer_sdp(**sdp_kwargs), content_type="application/sdp")
    return h.feed(request, source=FAR), request
