"""Session timers (RFC 4028) for one call: what we ask for, what was agreed, when to act.

Our INVITE asks for ``Session-Expires: N;refresher=uac`` with our ``Min-SE`` (none when the
interval is 0). The 2xx says what was agreed; without a Session-Expires there is no session
timer. A 422 names the shortest interval the far end takes: we ask again with it. Once
agreed, the refresher sends a refresh at half the interval, and the session expires
``interval - min(32, interval / 3)`` seconds after the last refresh (section 10).

The far end may refresh too (a re-INVITE or UPDATE it sends): an interval below our Min-SE
gets a 422; otherwise its request says who refreshes from then on ("uac" in their request
is them; without a preference they do), and our 2xx says it back, with ``Require: timer``
when they support timers.

``SessionTimer`` only keeps this state and reads and writes the headers; ``OutboundCall``
sends the refresh re-INVITE and keeps the deadlines (``deadlines``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from gateway.sip.errors import SipHeaderError
from gateway.sip.headers import parse_header_params, split_list
from gateway.sip.message import SipMessage, SipRequest, SipResponse
from gateway.sip.uri import Params

__all__ = [
    "DIALOG_GONE",
    "Agreement",
    "SessionTimer",
    "min_se",
    "option_tags",
    "session_expires",
]

# A refresh answered with one of these: the far end no longer knows the dialog.
DIALOG_GONE: Final = frozenset({481, 408})


def _delta_seconds(text: str, header: str) -> tuple[int, Params]:
    value, _, rest = text.partition(";")
    value = value.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 10:
        raise SipHeaderError(f"invalid {header} value {text!r}", header=header)
    params = parse_header_params(";" + rest, header) if rest else Params()
    return int(value), params


def session_expires(message: SipMessage) -> tuple[int, str | None] | None:
    """(interval, refresher) of a Session-Expires header; raises SipHeaderError if malformed."""
    value = message.header("Session-Expires")
    if value is None:
        return None
    interval, params = _delta_seconds(value, "Session-Expires")
    if interval <= 0:
        raise SipHeaderError("Session-Expires must be positive", header="Session-Expires")
    refresher = params.get("refresher")
    return interval, refresher.lower() if refresher else None


def min_se(message: SipMessage) -> int | None:
    """The Min-SE seconds of a message; None when absent, malformed or zero."""
    value = message.header("Min-SE")
    if value is None:
        return None
    try:
        seconds, _ = _delta_seconds(value, "Min-SE")
    except SipHeaderError:
        return None
    return seconds or None


def option_tags(message: SipMessage, header: str) -> set[str]:
    """The option tags of a Require or Supported header, lower-cased."""
    tags: set[str] = set()
    for value in message.headers.get_all(header):
        tags.update(t.strip().lower() for t in split_list(value) if t.strip())
    return tags


@dataclass
class Agreement:
    interval: int
    we_refresh: bool


class SessionTimer:
    def __init__(self, session_expires: int, min_se: int) -> None:
        self.min_se = min_se
        # What the INVITE asks for (0: no session timer); a 422 raises it.
        self._requested = max(session_expires, min_se) if session_expires else 0
        self.agreed: Agreement | None = None

    def invite_headers(self) -> list[tuple[str, str]]:
        if not self._requested:
            return []
        return [("Session-Expires", f"{self._requested};refresher=uac"), ("Min-SE", str(self.min_se))]

    def refresh_headers(self) -> list[tuple[str, str]]:
        assert self.agreed is not None
        interval = self.agreed.interval
        return [("Session-Expires", f"{interval};refresher=uac"), ("Min-SE", str(min(self.min_se, interval)))]

    def interval_too_small(self, response: SipResponse) -> bool:
        """Take the Min-SE of a 422 (section 6); False when it names none, so no retry helps.

        Before an agreement that is the INVITE's interval; after, the refresh's."""
        smallest = min_se(response)
        if smallest is None:
            return False
        self.min_se = max(self.min_se, smallest)
        if self.agreed is None:
            self._requested = self.min_se
        else:
            self.agreed.interval = max(self.agreed.interval, smallest)
        return True

    def on_answer(self, response: SipResponse) -> None:
        """A 2xx to our INVITE or refresh says what was agreed (nothing without Session-Expires)."""
        try:
            negotiated = session_expires(response)
        except SipHeaderError:
            negotiated = None
        if negotiated is None:
            self.agreed = None
            return
        interval, refresher = negotiated
        # refresher=uac names us, the UAC of that transaction; RFC 4028 says a 2xx must name one.
        self.agreed = Agreement(interval, refresher != "uas")

    def on_peer_refresh(self, request: SipRequest, offered: tuple[int, str | None] | None) -> list[tuple[str, str]]:
        """A re-INVITE/UPDATE of theirs we accept (``offered``: its Session-Expires, already
        checked against our Min-SE); returns the headers of our 2xx."""
        if offered is None:
            return []
        interval, refresher = offered
        # In their request "uac" is them; without a preference we let them refresh.
        we_refresh = refresher == "uas"
        self.agreed = Agreement(interval, we_refresh)
        headers = [("Session-Expires", f"{interval};refresher={'uas' if we_refresh else 'uac'}")]
        if "timer" in option_tags(request, "Supported"):
            headers.append(("Require", "timer"))
        return headers

    def deadlines(self, now: float) -> tuple[float | None, float] | None:
        """When we send a refresh (None: they refresh) and when the session expires, counted
        from a refresh at ``now``; None without an agreement."""
        agreed = self.agreed
        if agreed is None:
            return None
        refresh_at = now + agreed.interval / 2 if agreed.we_refresh else None
        return refresh_at, now + agreed.interval - min(32.0, agreed.interval / 3)
