"""API key authentication: keys are kept only as SHA-256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from gateway.config import AccountConfig


class Keyring:
    def __init__(self, accounts: Sequence[AccountConfig]) -> None:
        self._entries: list[tuple[bytes, AccountConfig]] = [
            (digest, account) for account in accounts for digest in account.key_hashes()
        ]

    def lookup(self, presented: str | None) -> AccountConfig | None:
        """The account owning `presented`, or None. Every stored digest is compared, match or not."""
        if not presented:
            return None
        digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
        found: AccountConfig | None = None
        for stored, account in self._entries:
            if hmac.compare_digest(stored, digest):
                found = account
        return found
