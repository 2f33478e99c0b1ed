"""Typed errors raised by the media data-plane cores.

Every parser in ``media`` raises only subclasses of :class:`MediaError` for bad
input, so callers on the hot path can catch one family without masking bugs::

    MediaError(ValueError)
    ├── RtpParseError      malformed RTP packet
    ├── RtcpParseError     malformed RTCP (compound) packet
    ├── DtmfParseError     malformed RFC 4733 telephone-event payload
    ├── CodecError         PCM/G.711 input of an invalid length or type
    └── ResampleError      unsupported rate or invalid PCM input to a resampler

The base derives from :class:`ValueError` because every case describes a bad value.
"""

from __future__ import annotations

__all__ = [
    "CodecError",
    "DtmfParseError",
    "MediaError",
    "ResampleError",
    "RtcpParseError",
    "RtpParseError",
]


class MediaError(ValueError):
    """Base class for all media data-plane errors."""


class RtpParseError(MediaError):
    """An RTP packet is truncated or violates RFC 3550 framing."""


class RtcpParseError(MediaError):
    """An RTCP packet is truncated or violates RFC 3550 framing."""


class DtmfParseError(MediaError):
    """A telephone-event payload (RFC 4733) is truncated or invalid."""


class CodecError(MediaError):
    """Codec input has an invalid length (e.g. odd number of PCM16 bytes)."""


class ResampleError(MediaError):
    """Unsupported sample-rate pair or malformed PCM input."""
