"""Phone numbers as the API and the configuration take them: E.164, checked against libphonenumber's metadata.

A number must be *possible* (a known country code and a length that country uses), so typos such
as `+1` or `+999999` never reach a trunk. Range validity (`is_valid_number`) is only demanded where an
account asks for it: carriers' test numbers and fictional ranges such as `+1555...` are possible
but not valid, and must keep working by default.
"""

from __future__ import annotations

import re
from typing import Annotated

import phonenumbers
from phonenumbers import NumberParseException, ValidationResult
from pydantic import AfterValidator, Field, StrictStr
from pydantic_core import PydanticCustomError

__all__ = ["E164_PATTERN", "EXPECTED", "InvalidNumber", "PhoneNumber", "is_e164_shape", "parse_e164"]

EXPECTED = "E.164 format e.g. +14155552671"

# '+', a country code not starting with 0, at most 15 digits in all (ITU-T E.164).
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
_SHAPE = re.compile(E164_PATTERN)

_NOT_POSSIBLE = {
    ValidationResult.INVALID_COUNTRY_CODE: "has an unknown country code",
    ValidationResult.TOO_SHORT: "is too short for its country code",
    ValidationResult.TOO_LONG: "is too long for its country code",
    ValidationResult.INVALID_LENGTH: "has a length its country code does not use",
}


class InvalidNumber(ValueError):
    """`value` is not a number we can dial; `reason` completes "The number ...". """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_e164_shape(value: str) -> bool:
    return _SHAPE.fullmatch(value) is not None


def parse_e164(value: str, *, require_valid: bool = False) -> str:
    """`value` in E.164 when it is a possible number (and, if asked, in an assigned range)."""
    if not is_e164_shape(value):
        raise InvalidNumber("must be '+' then the country code and number, 2 to 15 digits")
    try:
        number = phonenumbers.parse(value, None)
    except NumberParseException as exc:
        unknown_code = exc.error_type == NumberParseException.INVALID_COUNTRY_CODE
        raise InvalidNumber("has an unknown country code" if unknown_code else "is too short") from None
    result = phonenumbers.is_possible_number_with_reason(number)
    if result == ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        raise InvalidNumber("is too short for its country code (an area code may be missing)")
    if result != ValidationResult.IS_POSSIBLE:
        raise InvalidNumber(_NOT_POSSIBLE.get(result, "is not a possible phone number"))
    if require_valid and not phonenumbers.is_valid_number(number):
        raise InvalidNumber("is not in a range assigned to a carrier")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _possible(value: str) -> str:
    try:
        return parse_e164(value)
    except InvalidNumber as exc:
        raise PydanticCustomError("phone_number", "The number {reason}", {"reason": exc.reason}) from None


# A possible number in E.164, for pydantic models (the API's bodies and the configuration).
PhoneNumber = Annotated[
    StrictStr, Field(pattern=E164_PATTERN, examples=["+14155552671"]), AfterValidator(_possible)
]
