"""JSON against Avro schemas: exact types, ranges, lengths; and the JSON Schemas they export."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streams.contexts.orders import context as orders
from streams.wire.schemas import catalog_for
from streams.wire.validation import JsonInvalid, compile_validator, json_schema

CATALOG = catalog_for(orders)
ADD_ITEM = json.loads(CATALOG.latest("AddItem").text)
STATE = json.loads(CATALOG.latest("OrderState").text)
check_add_item = compile_validator(ADD_ITEM)


def test_a_valid_command_passes() -> None:
    check_add_item({"sku": "w", "quantity": 2, "unit_price_cents": 250})
    check_add_item({"sku": "w", "quantity": 2, "unit_price_cents": 250, "currency": None})
    check_add_item({"sku": "w", "quantity": 2, "unit_price_cents": 250, "currency": "EUR"})


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"sku": "w", "quantity": True, "unit_price_cents": 1},
            "quantity",
            "must be an integer (long), not a boolean",
        ),
        (
            {"sku": "w", "quantity": 1, "unit_price_cents": 2.75},
            "unit_price_cents",
            "not a number with a fraction",
        ),
        (
            {"sku": "w", "quantity": 1, "unit_price_cents": 2.0},
            "unit_price_cents",
            "not a floating-point number",
        ),
        (
            {"sku": "w", "quantity": 2**63, "unit_price_cents": 1},
            "quantity",
            "outside the range of an Avro long",
        ),
        ({"sku": "w", "quantity": 1.2e22, "unit_price_cents": 1}, "quantity", "must be an integer"),
        ({"sku": 7, "quantity": 1, "unit_price_cents": 1}, "sku", "must be a string, not an integer"),
        ({"sku": "s" * 256, "quantity": 1, "unit_price_cents": 1}, "sku", "has 256 characters; at most 255"),
        ({"sku": "a\x00", "quantity": 1, "unit_price_cents": 1}, "sku", "contains U+0000"),
        ({"sku": "w", "quantity": 1}, "unit_price_cents", "is missing"),
        ({"sku": "w", "quantity": 1, "unit_price_cents": 1, "colour": "red"}, "colour", "is not a field"),
        (
            {"sku": "w", "quantity": 1, "unit_price_cents": 1, "currency": 3},
            "currency",
            "must be null or string",
        ),
        ([], "", "must be an object, not an array"),
    ],
)
def test_a_value_of_the_wrong_json_type_is_refused_never_coerced(data: Any, field: str, message: str) -> None:
    with pytest.raises(JsonInvalid) as info:
        check_add_item(data)
    assert info.value.field == field and message in str(info.value)


def test_nested_records_and_arrays_name_the_path() -> None:
    check = compile_validator(STATE)
    line = {"sku": "w", "quantity": 1, "unit_price_cents": 1}
    check({"status": "placed", "customer_id": "c", "currency": "EUR", "lines": [line]})
    with pytest.raises(JsonInvalid) as info:
        check(
            {
                "status": "placed",
                "customer_id": "c",
                "currency": "EUR",
                "lines": [line, {**line, "quantity": "1"}],
            }
        )
    assert info.value.field == "lines[1].quantity"


def test_the_json_schema_says_what_the_validator_enforces() -> None:
    schema = json_schema(ADD_ITEM)
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    assert schema["required"] == ["sku", "quantity", "unit_price_cents"]
    assert schema["properties"]["sku"]["maxLength"] == 255
    assert schema["properties"]["quantity"] == {
        "type": "integer",
        "minimum": -(2**63),
        "maximum": 2**63 - 1,
        "format": "int64",
    }
    assert schema["properties"]["currency"]["anyOf"][0] == {"type": "null"}


def test_identifiers_fit_agrees_with_check_identifier() -> None:
    from streams.wire.identifiers import InvalidIdentifier, check_identifier, identifiers_fit

    samples = ["", "o-1", "x" * 255, "x" * 256, "a\x00b", "tab\there", "\x9f", "\ud800", "ünïcödé 🚀"]
    for a in samples:
        for b in ("ok", a):
            try:
                check_identifier("a", a, required=False)
                check_identifier("b", b, required=False)
                valid = True
            except InvalidIdentifier:
                valid = False
            assert identifiers_fit(a, b) is valid, (a, b)
