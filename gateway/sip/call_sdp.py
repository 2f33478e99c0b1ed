"""Our side of one call's SDP session (RFC 3264): the offer, our answers, what we sent last.

The o= session id is drawn once per call; the version starts equal to it and goes up by one
with every offer or answer we make after the first (RFC 3264 section 8). The SDP we sent
last is what a session refresh repeats, unchanged.
"""

from __future__ import annotations

import secrets

from gateway.sip.message import SipMessage
from gateway.sip.offer_answer import answer_offer, build_offer, negotiate_answer
from gateway.sip.sdp import NegotiatedMedia, SdpError, SessionDescription
from gateway.sip.ua_events import LocalMedia

__all__ = ["SDP", "LocalSdp", "negotiate", "sdp_body"]

SDP = "application/sdp"


def sdp_body(message: SipMessage) -> bytes | None:
    """The message's SDP, if it carries any."""
    if message.content_type == SDP and message.body.strip():
        return message.body
    return None


def negotiate(offer: SessionDescription, sdp: bytes) -> NegotiatedMedia | None:
    """The media an answer to our ``offer`` agrees on; None when it is unusable or refuses audio."""
    try:
        media = negotiate_answer(offer, SessionDescription.parse(sdp))
    except SdpError:
        return None
    return None if media.rejected else media


class LocalSdp:
    """The SDP we offer and answer with for one call, from its ``LocalMedia``."""

    def __init__(self, media: LocalMedia) -> None:
        self._media = media
        self._session_id = secrets.randbelow(2**31 - 2) + 1
        self._version = self._session_id
        self.offer = self._build_offer()  # raises SdpError for media we cannot offer
        self.last = self.offer
        self.last_bytes = self.offer.to_bytes()

    def answer(self, sdp: bytes) -> NegotiatedMedia:
        """Answer the far end's offer with our media; raises ``SdpParseError`` (400) or
        ``SdpNegotiationError`` (488)."""
        media = self._media
        answer, negotiated = answer_offer(
            SessionDescription.parse(sdp),
            media.address,
            media.rtp_port,
            media.codecs,
            self._session_id,
            self._version + 1,
            ptime=media.ptime,
            telephone_events="0-16" if media.dtmf_payload_type is not None else "",
        )
        self._version += 1
        self._sent(answer)
        return negotiated

    def new_offer(self) -> SessionDescription:
        """A fresh offer in the same session (for the 2xx to an offerless re-INVITE)."""
        self._version += 1
        offer = self._build_offer()
        self._sent(offer)
        return offer

    def _build_offer(self) -> SessionDescription:
        media = self._media
        return build_offer(
            self._session_id,
            self._version,
            media.address,
            media.rtp_port,
            media.codecs,
            media.dtmf_payload_type,
            media.ptime,
        )

    def _sent(self, sdp: SessionDescription) -> None:
        self.last = sdp
        self.last_bytes = sdp.to_bytes()
