"""SDP offer/answer (RFC 3264) for a G.711 voice gateway, sans-I/O.

Builds our offers, reads the far end's answers and answers the far end's offers, on the
session description model of ``gateway.sip.sdp``.

Public API
----------
- ``SdpNegotiationError(SdpError)`` -- offer and answer have no usable audio
  stream in common; ``status`` 488 with an RFC 3261 Warning code in
  ``warning_code``: 302 incompatible transport, 304 no audio stream, 305 no
  common codec (constants ``WARNING_INCOMPATIBLE_TRANSPORT``,
  ``WARNING_MEDIA_TYPE_UNAVAILABLE``, ``WARNING_INCOMPATIBLE_FORMAT``);
  ``warning(host)`` is the Warning header value for the 488, or None.
- ``build_offer(session_id, version, address, rtp_port, codecs=("PCMU", "PCMA"),
  dtmf_payload_type=101, ptime=20, direction="sendrecv", username="-")
  -> SessionDescription``: one ``RTP/AVP`` audio stream with the static
  payload types in ``codecs`` order (PCMU, PCMA, G722, G729, GSM known),
  ``telephone-event/8000`` with ``fmtp 0-16`` on ``dtmf_payload_type``
  (omitted when None), ``a=ptime`` and the direction attribute; session and
  origin address type IP6 when ``address`` contains a colon.
- ``negotiate_answer(offer, answer) -> NegotiatedMedia`` for the answer to an
  offer we sent (``offer`` is the SessionDescription we sent, normally from
  ``build_offer``). The codec is the first voice format of the answer's
  audio stream that we offered (static payload type or rtpmap name); the
  answer's audio stream is the one at the index of our offer's.
- ``answer_offer(offer, our_address, our_port, supported_codecs, session_id,
  version, *, direction="sendrecv", ptime=20, username="-",
  telephone_events="0-16", rtcp_mux=False) -> (SessionDescription,
  NegotiatedMedia)`` for an offer from the far end (initial INVITE,
  re-INVITE or UPDATE). The caller supplies ``version`` (previous + 1 for
  a changed answer in the same session).
- ``NegotiatedMedia`` (frozen, ``media.negotiated``): ``remote_address``, ``remote_port``,
  ``remote_rtcp_port``, ``rtcp_mux``, ``codec`` (upper-case encoding name),
  ``payload_type`` (the remote's number, to put on RTP we send),
  ``local_payload_type`` (the number we declared), ``clock_rate``,
  ``channels``, ``telephone_event_pt`` (remote's, or None),
  ``local_telephone_event_pt``, ``ptime`` (remote's, else ours, else 20),
  ``maxptime``, ``direction`` (ours: what *we* may do), ``remote_hold``
  (the far end does not want our media: sendonly, inactive or
  ``c=0.0.0.0``), ``rejected`` (port 0: no media flows; codec fields are
  then nominal), ``media_index``; properties ``can_send``, ``can_receive``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from gateway.sip.sdp import (
    NULL_ADDRESS,
    STATIC_PAYLOAD_TYPES,
    Attribute,
    Connection,
    MediaDescription,
    MediaDirection,
    NegotiatedMedia,
    Origin,
    RtpMap,
    SdpError,
    SessionDescription,
    Timing,
    address_type,
    parse_direction,
)

__all__ = [
    "WARNING_INCOMPATIBLE_FORMAT",
    "WARNING_INCOMPATIBLE_TRANSPORT",
    "WARNING_MEDIA_TYPE_UNAVAILABLE",
    "SdpNegotiationError",
    "answer_offer",
    "build_offer",
    "negotiate_answer",
]


WARNING_INCOMPATIBLE_TRANSPORT: Final = 302
WARNING_MEDIA_TYPE_UNAVAILABLE: Final = 304
WARNING_INCOMPATIBLE_FORMAT: Final = 305
# The warn-text of each code (RFC 3261 section 20.43).
_WARNING_TEXT: Final = {
    WARNING_INCOMPATIBLE_TRANSPORT: "Incompatible transport protocol",
    WARNING_MEDIA_TYPE_UNAVAILABLE: "Media type not available",
    WARNING_INCOMPATIBLE_FORMAT: "Incompatible media format",
}


class SdpNegotiationError(SdpError):
    """Offer and answer have no usable audio stream in common (488, with a Warning code)."""

    status = 488

    def warning(self, host: str) -> str | None:
        """The Warning header value for the 488 (RFC 3261 20.43), when the failure has a code."""
        text = _WARNING_TEXT.get(self.warning_code) if self.warning_code is not None else None
        return f'{self.warning_code} {host} "{text}"' if text is not None else None


_OFFERABLE: Final[dict[str, RtpMap]] = {
    rm.encoding: rm for pt, rm in STATIC_PAYLOAD_TYPES.items() if pt in (0, 3, 8, 9, 18)
}
# Formats that ride along a voice codec rather than being one.
_NOT_A_VOICE_CODEC: Final = frozenset({"telephone-event", "cn", "red", "ulpfec", "flexfec", "rtx"})
_DEFAULT_PTIME: Final = 20


# --------------------------------------------------------------------------- offer


def build_offer(
    session_id: int,
    version: int,
    address: str,
    rtp_port: int,
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    dtmf_payload_type: int | None = 101,
    ptime: int = _DEFAULT_PTIME,
    direction: MediaDirection | str = MediaDirection.SENDRECV,
    username: str = "-",
) -> SessionDescription:
    """A single-stream G.711 style audio offer (RFC 3264 section 5)."""
    if not codecs:
        raise SdpError("an offer needs at least one codec")
    chosen: list[RtpMap] = []
    for name in codecs:
        rtpmap = _OFFERABLE.get(name.upper())
        if rtpmap is None:
            raise SdpError(f"cannot offer codec {name!r}; known: {sorted(_OFFERABLE)}")
        chosen.append(rtpmap)
    formats = [str(rm.payload_type) for rm in chosen]
    attributes = [Attribute("rtpmap", str(rm)) for rm in chosen]
    if dtmf_payload_type is not None:
        if not 96 <= dtmf_payload_type <= 127:
            raise SdpError(f"telephone-event needs a dynamic payload type, not {dtmf_payload_type}")
        formats.append(str(dtmf_payload_type))
        attributes.append(Attribute("rtpmap", f"{dtmf_payload_type} telephone-event/8000"))
        attributes.append(Attribute("fmtp", f"{dtmf_payload_type} 0-16"))
    attributes.append(Attribute("ptime", str(ptime)))
    attributes.append(Attribute(parse_direction(direction).value))
    return SessionDescription(
        origin=Origin(username, session_id, version, address, addrtype=address_type(address)),
        connection=Connection.for_address(address),
        media=[MediaDescription("audio", rtp_port, "RTP/AVP", formats, attributes=attributes)],
    )


# --------------------------------------------------------------------------- negotiation


def _voice_codecs(media: MediaDescription) -> list[RtpMap]:
    out: list[RtpMap] = []
    for pt in media.payload_types:
        rtpmap = media.rtpmap(pt)
        if rtpmap is not None and rtpmap.encoding.lower() not in _NOT_A_VOICE_CODEC:
            out.append(RtpMap(pt, rtpmap.encoding, rtpmap.clock_rate, rtpmap.channels))
    return out


def _telephone_event(media: MediaDescription, clock_rate: int) -> RtpMap | None:
    # RFC 4733 section 7.1.1: events use the clock rate of the audio codec.
    for pt in media.payload_types:
        rtpmap = media.rtpmap(pt)
        if (
            rtpmap is not None
            and rtpmap.encoding.lower() == "telephone-event"
            and rtpmap.clock_rate == clock_rate
        ):
            return RtpMap(pt, rtpmap.encoding, rtpmap.clock_rate, rtpmap.channels)
    return None


def _effective_remote_direction(direction: MediaDirection, connection: Connection | None) -> MediaDirection:
    # RFC 2543 hold: c=0.0.0.0 means "do not send to me" whatever the attribute says.
    if connection is not None and connection.is_hold:
        return MediaDirection.from_flags(direction.sends, False)
    return direction


def _rtcp_port(media: MediaDescription, mux: bool) -> int:
    if mux:
        return media.port
    rtcp = media.rtcp
    return rtcp[0] if rtcp is not None else media.port + 1


def negotiate_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """Read the far end's answer to ``offer`` (which we sent), RFC 3264 section 6."""
    index = offer.audio_index()
    if index is None:
        raise SdpError("our offer has no audio stream")
    ours = offer.media[index]
    if index >= len(answer.media):
        raise SdpNegotiationError(
            f"answer has {len(answer.media)} media streams, offer had {len(offer.media)}",
            warning_code=WARNING_MEDIA_TYPE_UNAVAILABLE,
        )
    theirs = answer.media[index]
    if theirs.media.lower() != "audio":
        raise SdpNegotiationError(
            f"answer stream {index} is {theirs.media!r}, not audio",
            warning_code=WARNING_MEDIA_TYPE_UNAVAILABLE,
        )
    rejected = theirs.port == 0
    if not rejected and theirs.proto.upper() != ours.proto.upper():
        raise SdpNegotiationError(
            f"answer transport {theirs.proto!r} differs from offered {ours.proto!r}",
            warning_code=WARNING_INCOMPATIBLE_TRANSPORT,
        )

    offered = _voice_codecs(ours)
    if not offered:
        raise SdpError("our offer has no voice codec")
    pair: tuple[RtpMap, RtpMap] | None = None
    for candidate in _voice_codecs(theirs):
        mine = next((o for o in offered if o.matches(candidate)), None)
        if mine is not None:
            pair = (candidate, mine)
            break
    if pair is None:
        if not rejected:
            raise SdpNegotiationError(
                "answer contains none of the offered codecs", warning_code=WARNING_INCOMPATIBLE_FORMAT
            )
        pair = (offered[0], offered[0])
    remote_codec, local_codec = pair

    local_te = _telephone_event(ours, local_codec.clock_rate)
    remote_te = _telephone_event(theirs, remote_codec.clock_rate) if local_te is not None else None

    connection = answer.media_connection(theirs)
    if connection is None and not rejected:
        raise SdpNegotiationError("answer has no connection address for audio")
    our_direction = offer.media_direction(ours)
    remote_direction = _effective_remote_direction(answer.media_direction(theirs), connection)
    direction = MediaDirection.INACTIVE if rejected else our_direction.intersect(remote_direction.reversed())
    mux = ours.rtcp_mux and theirs.rtcp_mux
    return NegotiatedMedia(
        remote_address=connection.host if connection is not None else NULL_ADDRESS,
        remote_port=theirs.port,
        remote_rtcp_port=_rtcp_port(theirs, mux) if not rejected else 0,
        rtcp_mux=mux,
        codec=remote_codec.encoding.upper(),
        payload_type=remote_codec.payload_type,
        local_payload_type=local_codec.payload_type,
        clock_rate=remote_codec.clock_rate,
        channels=remote_codec.channels or 1,
        telephone_event_pt=remote_te.payload_type if remote_te is not None else None,
        local_telephone_event_pt=local_te.payload_type if local_te is not None else None,
        ptime=theirs.ptime or ours.ptime or _DEFAULT_PTIME,
        maxptime=theirs.maxptime,
        direction=direction,
        remote_hold=not rejected and our_direction.sends and not remote_direction.receives,
        rejected=rejected,
        media_index=index,
    )


def _parse_events(text: str) -> set[int]:
    events: set[int] = set()
    for item in text.replace(" ", "").split(","):
        low, _, high = item.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            continue
        start, stop = int(low), int(high or low)
        if stop < start or stop > 255:
            continue
        events.update(range(start, stop + 1))
    return events


def _format_events(events: set[int]) -> str:
    ranges: list[str] = []
    ordered = sorted(events)
    start = prev = ordered[0]
    for event in [*ordered[1:], None]:
        if event is not None and event == prev + 1:
            prev = event
            continue
        ranges.append(str(start) if start == prev else f"{start}-{prev}")
        if event is not None:
            start = prev = event
    return ",".join(ranges)


def _supported(name: str, candidate: RtpMap) -> bool:
    known = _OFFERABLE.get(name.upper())
    if known is not None:
        return known.matches(candidate)
    return name.lower() == candidate.encoding.lower()


def _acceptable_proto(proto: str) -> bool:
    # Plain RTP only: no SRTP. AVPF offers are answered in kind; feedback is simply not sent.
    return proto.upper() in ("RTP/AVP", "RTP/AVPF")


def answer_offer(
    offer: SessionDescription,
    our_address: str,
    our_port: int,
    supported_codecs: Sequence[str],
    session_id: int,
    version: int,
    *,
    direction: MediaDirection | str = MediaDirection.SENDRECV,
    ptime: int = _DEFAULT_PTIME,
    username: str = "-",
    telephone_events: str = "0-16",
    rtcp_mux: bool = False,
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer an offer from the far end (RFC 3264 section 6).

    The first audio stream with a codec in ``supported_codecs`` is accepted
    with that single codec (their order of preference, their payload type
    numbers) plus their ``telephone-event`` if any; every other stream is
    refused with port 0. ``direction`` is what we want (e.g. ``sendonly`` to
    hold them) and is narrowed by what they offered.
    """
    wanted = parse_direction(direction)
    answer = SessionDescription(
        origin=Origin(username, session_id, version, our_address, addrtype=address_type(our_address)),
        connection=Connection.for_address(our_address),
        times=[Timing(t.start, t.stop) for t in offer.times] or [Timing()],
    )
    our_events = _parse_events(telephone_events)
    result: NegotiatedMedia | None = None
    failure: SdpNegotiationError | None = None
    disabled_audio: int | None = None

    for index, theirs in enumerate(offer.media):
        is_audio = theirs.media.lower() == "audio"
        codec: RtpMap | None = None
        if result is None and is_audio and theirs.port != 0:
            if not _acceptable_proto(theirs.proto):
                failure = failure or SdpNegotiationError(
                    f"unsupported audio transport {theirs.proto!r}",
                    warning_code=WARNING_INCOMPATIBLE_TRANSPORT,
                )
            else:
                codec = next(
                    (c for c in _voice_codecs(theirs) if any(_supported(n, c) for n in supported_codecs)),
                    None,
                )
                if codec is None:
                    failure = failure or SdpNegotiationError(
                        "offer contains none of our codecs", warning_code=WARNING_INCOMPATIBLE_FORMAT
                    )
        if codec is None:
            if is_audio and theirs.port == 0 and disabled_audio is None:
                disabled_audio = index
            answer.media.append(MediaDescription(theirs.media, 0, theirs.proto, list(theirs.formats)))
            continue
        media, result = _accept_stream(
            offer, index, theirs, codec, our_port, wanted, ptime, our_events, rtcp_mux
        )
        answer.media.append(media)

    if result is not None:
        return answer, result
    if failure is not None:
        raise failure
    if disabled_audio is not None:
        return answer, _disabled_stream(offer, disabled_audio, supported_codecs)
    raise SdpNegotiationError("offer has no audio stream", warning_code=WARNING_MEDIA_TYPE_UNAVAILABLE)


def _accept_stream(
    offer: SessionDescription,
    index: int,
    theirs: MediaDescription,
    codec: RtpMap,
    our_port: int,
    wanted: MediaDirection,
    ptime: int,
    our_events: set[int],
    rtcp_mux: bool,
) -> tuple[MediaDescription, NegotiatedMedia]:
    formats = [str(codec.payload_type)]
    attributes = [Attribute("rtpmap", str(codec))]
    codec_fmtp = theirs.fmtp(codec.payload_type)
    if codec_fmtp:
        attributes.append(Attribute("fmtp", f"{codec.payload_type} {codec_fmtp}"))

    te = _telephone_event(theirs, codec.clock_rate)
    if te is not None:
        # RFC 4733 section 2.4.1: without fmtp the offerer supports events 0-15.
        their_events = _parse_events(theirs.fmtp(te.payload_type) or "0-15")
        common = their_events & our_events
        if common:
            formats.append(str(te.payload_type))
            attributes.append(Attribute("rtpmap", str(te)))
            attributes.append(Attribute("fmtp", f"{te.payload_type} {_format_events(common)}"))
        else:
            te = None

    connection = offer.media_connection(theirs)
    if connection is None:
        raise SdpNegotiationError("offer has no connection address for audio")
    their_direction = _effective_remote_direction(offer.media_direction(theirs), connection)
    direction = wanted.intersect(their_direction.reversed())
    mux = rtcp_mux and theirs.rtcp_mux

    attributes.append(Attribute("ptime", str(ptime)))
    if mux:
        attributes.append(Attribute("rtcp-mux"))
    attributes.append(Attribute(direction.value))
    media = MediaDescription("audio", our_port, theirs.proto, formats, attributes=attributes)

    negotiated = NegotiatedMedia(
        remote_address=connection.host,
        remote_port=theirs.port,
        remote_rtcp_port=_rtcp_port(theirs, mux),
        rtcp_mux=mux,
        codec=codec.encoding.upper(),
        payload_type=codec.payload_type,
        local_payload_type=codec.payload_type,
        clock_rate=codec.clock_rate,
        channels=codec.channels or 1,
        telephone_event_pt=te.payload_type if te is not None else None,
        local_telephone_event_pt=te.payload_type if te is not None else None,
        ptime=theirs.ptime or ptime,
        maxptime=theirs.maxptime,
        direction=direction,
        remote_hold=not their_direction.receives,
        rejected=False,
        media_index=index,
    )
    return media, negotiated


def _disabled_stream(
    offer: SessionDescription, index: int, supported_codecs: Sequence[str]
) -> NegotiatedMedia:
    """The offerer set the audio port to 0: answer in kind, nothing flows (RFC 3264 section 8.2)."""
    theirs = offer.media[index]
    codecs = _voice_codecs(theirs) if theirs.is_rtp else []
    codec = next((c for c in codecs if any(_supported(n, c) for n in supported_codecs)), None)
    if codec is None:
        codec = next((_OFFERABLE[n.upper()] for n in supported_codecs if n.upper() in _OFFERABLE), None)
    if codec is None:
        codec = STATIC_PAYLOAD_TYPES[0]
    connection = offer.media_connection(theirs)
    return NegotiatedMedia(
        remote_address=connection.host if connection is not None else NULL_ADDRESS,
        remote_port=0,
        remote_rtcp_port=0,
        rtcp_mux=False,
        codec=codec.encoding.upper(),
        payload_type=codec.payload_type,
        local_payload_type=codec.payload_type,
        clock_rate=codec.clock_rate,
        channels=codec.channels or 1,
        telephone_event_pt=None,
        local_telephone_event_pt=None,
        ptime=theirs.ptime or _DEFAULT_PTIME,
        maxptime=theirs.maxptime,
        direction=MediaDirection.INACTIVE,
        remote_hold=False,
        rejected=True,
        media_index=index,
    )
