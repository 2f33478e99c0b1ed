"""Public identifiers: a readable prefix and 96 random bits, so ids cannot be guessed."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def new_call_id() -> str:
    return new_id("call")


def new_request_id() -> str:
    return new_id("req")


def new_event_id() -> str:
    return new_id("evt")
