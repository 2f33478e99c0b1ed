"""E.164 numbers checked against libphonenumber's metadata: possible by default, valid on request."""

from __future__ import annotations

import pytest

from gateway.numbers import InvalidNumber, is_e164_shape, parse_e164


@pytest.mark.parametrize("number", ["+14155552671", "+442071234567", "+4915123456789", "+15550123456", "+493036232000012"])
def test_possible_numbers_pass_in_e164(number: str) -> None:
    assert parse_e164(number) == number


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("+1", "2 to 15 digits"),
        ("14155552671", "2 to 15 digits"),
        ("+0123", "2 to 15 digits"),
        ("+14155552671\n", "2 to 15 digits"),
        ("+44", "too short"),
        ("+999999", "unknown country code"),
        ("+1415555", "too short"),
        ("+123456789012345", "too long"),
        ("+4420712345", "area code"),
    ],
)
def test_impossible_numbers_say_why(number: str, reason: str) -> None:
    with pytest.raises(InvalidNumber) as exc:
        parse_e164(number)
    assert reason in exc.value.reason


def test_valid_is_stricter_than_possible() -> None:
    assert parse_e164("+15550123456") == "+15550123456"  # fictional range: possible
    with pytest.raises(InvalidNumber):
        parse_e164("+15550123456", require_valid=True)
    assert parse_e164("+14155552671", require_valid=True) == "+14155552671"


def test_shape_is_ascii_digits_only() -> None:
    assert is_e164_shape("+14155552671")
    assert not is_e164_shape("+١٤١٥٥٥٥٢٦٧١")
