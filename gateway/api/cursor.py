"""Opaque list cursors: signed, bound to the account and to the filters they were made for."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime

from gateway.errors import BadRequest
from gateway.timeutil import as_utc

_PREFIX = "cur_"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, account_id: str, filters: str, body: bytes) -> bytes:
        msg = b"\x00".join([account_id.encode(), filters.encode(), body])
        return hmac.new(self._key, msg, hashlib.sha256).digest()[:16]

    def encode(self, account_id: str, filters: str, after: tuple[datetime, str]) -> str:
        created, call_id = after
        body = json.dumps([as_utc(created).isoformat(), call_id], separators=(",", ":")).encode()
        return _PREFIX + _b64(body) + "." + _b64(self._mac(account_id, filters, body))

    def decode(self, account_id: str, filters: str, cursor: str) -> tuple[datetime, str]:
        invalid = BadRequest(
            "The cursor is not valid for this listing: use the cursor from the previous page with the same filters",
            code="INVALID_CURSOR",
            details={"field": "cursor"},
        )
        if not cursor.startswith(_PREFIX) or cursor.count(".") != 1:
            raise invalid
        body_b64, mac_b64 = cursor[len(_PREFIX) :].split(".")
        try:
            body, mac = _unb64(body_b64), _unb64(mac_b64)
        except (binascii.Error, ValueError):
            raise invalid from None
        if not hmac.compare_digest(mac, self._mac(account_id, filters, body)):
            raise invalid
        try:
            created_s, call_id = json.loads(body)
            return as_utc(datetime.fromisoformat(created_s)), str(call_id)
        except (ValueError, TypeError):
            raise invalid from None
