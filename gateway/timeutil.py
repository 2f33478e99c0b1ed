"""UTC time helpers: the API shows ISO 8601 UTC with a `Z`, to the second, like the seed."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return as_utc(dt).strftime("%Y-%m-%dT%H:%M:%SZ")


def as_utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def whole_seconds_between(start: datetime, end: datetime) -> int:
    """Seconds between two instants as the API shows them (both truncated to the second)."""
    a = as_utc(start).replace(microsecond=0)
    b = as_utc(end).replace(microsecond=0)
    return max(0, int((b - a).total_seconds()))
