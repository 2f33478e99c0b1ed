"""JSON the gateway writes is always valid: strict, UTF-8, repaired rather than failing."""

from __future__ import annotations

import json

from gateway.jsonutil import clean_text, dumps, dumps_bytes


def test_plain_values_are_written_compactly() -> None:
    assert dumps({"a": [1, 2.5, "é"]}) == '{"a":[1,2.5,"é"]}'


def test_non_finite_numbers_become_null() -> None:
    text = dumps({"jitter": float("nan"), "mos": [float("inf"), 1.0], "x": -float("inf")})
    assert json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c))) == {
        "jitter": None, "mos": [None, 1.0], "x": None
    }


def test_lone_surrogates_are_replaced_and_the_bytes_are_utf8() -> None:
    data = dumps_bytes({"reason": "Busy \udcff", "\ud800k": 1})
    decoded = json.loads(data.decode("utf-8"))
    assert decoded["reason"].startswith("Busy ") and "\udcff" not in decoded["reason"]
    assert clean_text("ok") == "ok"
