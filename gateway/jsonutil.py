"""JSON as the gateway writes it (API answers, webhook bodies, stored records): always valid JSON.

Python's `json` writes `NaN` and `Infinity` (not JSON) and strings holding lone surrogates
(not UTF-8). Client input carrying either is refused at the API; what is left are values
the gateway made itself, such as a media statistic that came out non-finite or a reason
phrase a carrier sent in broken UTF-8. Those are repaired, not allowed to fail a write.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

log = logging.getLogger("gateway.json")


def dumps(value: Any) -> str:
    """Strict JSON text that is also valid UTF-8: non-finite numbers become null, lone
    surrogates U+FFFD."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        text.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        log.warning("value repaired for JSON (non-finite number or invalid text)")
        text = json.dumps(repaired(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text


def dumps_bytes(value: Any) -> bytes:
    return dumps(value).encode("utf-8")


def clean_text(text: str) -> str:
    """`text` with anything that is not encodable as UTF-8 (lone surrogates) replaced by U+FFFD."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return text


def repaired(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): repaired(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [repaired(v) for v in value]
    return value
