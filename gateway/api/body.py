"""Request bodies read strictly: a JSON object of bounded nesting, finite numbers and valid Unicode.

Python's `json` accepts `NaN`/`Infinity` (not JSON), `1e999` (read as infinity), `"\\ud800"`
(a lone surrogate, which no UTF-8 encoder will write back) and nesting deep enough to raise
`RecursionError`. Each of those once got as far as the store or the dialer and failed later
as a 500. Here they are refused up front, with the field that holds them.

The body's size is capped before it gets here (`BodyLimitMiddleware`).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from gateway.errors import BadRequest, ValidationFailed

__all__ = ["parse_json_object"]

# Strings (with their escapes), brackets and colons: enough to follow the nesting without
# building anything, so a body nested 100,000 levels costs one linear scan.
# Possessive, so an unterminated string ends the scan instead of being retried at every quote.
_TOKENS = re.compile(r'"(?:[^"\\]++|\\.)*+(?:"|\Z)|[\[\]{}:]', re.DOTALL)


class _NonFinite:
    """Stands in for NaN, Infinity or an overflowing number until the walk names its field."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token


def _float(token: str) -> float | _NonFinite:
    value = float(token)
    return value if math.isfinite(value) else _NonFinite(token)


def _constant(token: str) -> _NonFinite:
    return _NonFinite(token)


def parse_json_object(raw: bytes, *, max_depth: int) -> dict[str, Any]:
    """The body as a dict. `max_depth` bounds the nesting below each top-level field (a field
    holding an object is at depth 1)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The request body is not valid UTF-8 JSON", code="INVALID_JSON") from None
    _check_depth(text, max_depth + 1)
    try:
        body = json.loads(text, parse_float=_float, parse_constant=_constant)
    except (ValueError, RecursionError):
        raise BadRequest("The request body is not valid JSON", code="INVALID_JSON") from None
    if not isinstance(body, dict):
        raise ValidationFailed("The request body must be a JSON object", field="body")
    for key, value in body.items():
        _check_values(value, key)
    return body


def _check_depth(text: str, limit: int) -> None:
    depth = 0
    field = "body"
    last_string = ""
    after_string = False
    for match in _TOKENS.finditer(text):
        lexeme = match.group()
        if lexeme[0] == '"':
            last_string, after_string = lexeme, True
            continue
        if lexeme == ":":
            if depth == 1 and after_string:
                field = _key(last_string)
        elif lexeme in "[{":
            depth += 1
            if depth > limit:
                raise ValidationFailed(
                    f"'{field}' is nested more than {limit - 1} levels deep",
                    field=field,
                    code="NESTING_TOO_DEEP",
                )
        else:
            depth -= 1
        after_string = False


def _key(lexeme: str) -> str:
    try:
        key = json.loads(lexeme)
    except ValueError:
        return "body"
    return _printable(key) if isinstance(key, str) else "body"


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _check_values(value: Any, path: str) -> None:
    """Refuse non-finite numbers and lone surrogates anywhere, naming where they are."""
    if isinstance(value, _NonFinite):
        raise ValidationFailed(
            f"'{path}' must be a finite number: {value.token} is not valid JSON",
            field=path,
            code="NON_FINITE_NUMBER",
        )
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"{path} (a key)")
            _check_values(item, f"{path}.{_printable(key)}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_values(item, f"{path}[{i}]")


def _check_text(text: str, path: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationFailed(
            f"'{path}' holds a lone UTF-16 surrogate (such as \\ud800), which is not valid Unicode text",
            field=path.removesuffix(" (a key)"),
            code="INVALID_UNICODE",
        ) from None
