"""UTC timestamps as the API shows them: ISO 8601 with a ``Z``, to the second.

The data plane's own copy of the two helpers it needs (agent session times), so
that ``media/`` does not import the control plane.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    utc = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")
