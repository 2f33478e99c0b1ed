"""Request bodies read strictly: bounded nesting (a linear scan, whatever the input), finite
numbers, valid Unicode, each refusal naming the field."""

from __future__ import annotations

import pytest

from gateway.api.body import parse_json_object
from gateway.errors import ApiError


def _refused(raw: bytes, depth: int = 16) -> ApiError:
    with pytest.raises(ApiError) as exc:
        parse_json_object(raw, max_depth=depth)
    return exc.value


def test_a_plain_object_is_returned() -> None:
    assert parse_json_object(b'{"to": "+1", "metadata": {"a": [1, {"b": 2}]}}', max_depth=16) == {
        "to": "+1", "metadata": {"a": [1, {"b": 2}]}
    }


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        (b'{"m": {"a": NaN}}', "NON_FINITE_NUMBER", "m.a"),
        (b'{"m": [0, 1e400]}', "NON_FINITE_NUMBER", "m[1]"),
        (b'{"m": {"k": "\\udc00"}}', "INVALID_UNICODE", "m.k"),
        (b'{"m": ' + b'[' * 18 + b']' * 18 + b'}', "NESTING_TOO_DEEP", "m"),
        (b'{"a\\u0062": ' + b'{"x":' * 20 + b'1' + b'}' * 20 + b'}', "NESTING_TOO_DEEP", "ab"),
        (b"[1, 2]", "VALIDATION_ERROR", "body"),
    ],
)
def test_refusals_name_the_field(raw: bytes, code: str, field: str) -> None:
    err = _refused(raw)
    assert (err.code, err.status) == (code, 422)
    assert err.details is not None and err.details["field"] == field


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff{}", b'{"a": 1,}'])
def test_malformed_is_invalid_json(raw: bytes) -> None:
    err = _refused(raw)
    assert (err.code, err.status) == ("INVALID_JSON", 400)


def test_the_depth_limit_is_inclusive() -> None:
    nested = b'{"m": ' + b'[' * 16 + b']' * 16 + b'}'
    assert parse_json_object(nested, max_depth=16)["m"] == [[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]
    assert _refused(b'{"m": ' + b'[' * 17 + b']' * 17 + b'}').code == "NESTING_TOO_DEEP"


def test_hostile_bodies_are_refused() -> None:
    # Each quote opening a string that never ends, and unclosed brackets: the scan does not
    # retry at every quote (a quadratic scan of these would take minutes, not milliseconds).
    for raw in (b'"\\"' * 30000, b"[" * 60000, b'{"a": "' + b"x" * 60000):
        with pytest.raises(ApiError):
            parse_json_object(raw, max_depth=16)
