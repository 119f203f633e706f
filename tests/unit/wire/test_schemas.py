"""Every message class has a schema file, and records round-trip through Avro."""

from __future__ import annotations

import io

import fastavro
import pytest

from streams.contexts.orders import OrderLine, OrderState
from streams.contexts.registry import contexts
from streams.wire.schemas import SchemaFileError, catalog_for, from_record, load_schema_file, to_record


@pytest.mark.parametrize("name", sorted(contexts()))
def test_every_message_of_a_context_has_a_schema(name: str) -> None:
    context = contexts()[name]
    catalog = catalog_for(context)
    for cls in (*context.commands, *context.events, context.state_type):
        latest = catalog.latest(cls.__name__)
        assert latest.fullname == f"{name}.{cls.__name__}"


def test_state_round_trips_through_its_avro_schema() -> None:
    catalog = catalog_for(contexts()["orders"])
    state = OrderState("placed", "c", "EUR", (OrderLine("a", 2, 100), OrderLine("b", 1, 5)))
    schema = catalog.latest("OrderState").parsed
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, to_record(state))
    buffer.seek(0)
    assert from_record(OrderState, fastavro.schemaless_reader(buffer, schema, schema)) == state


def test_a_schema_file_must_name_its_record(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "PlaceOrder.v1.avsc"
    path.write_text('{"type": "record", "name": "Other", "fields": []}')
    with pytest.raises(SchemaFileError):
        load_schema_file(path)


def test_a_record_missing_fields_takes_the_class_defaults() -> None:
    assert from_record(OrderState, {"status": "placed"}) == OrderState(status="placed")
    line = {"sku": "a", "quantity": 1, "unit_price_cents": 5}
    assert from_record(OrderState, {"lines": [line]}).lines == (OrderLine("a", 1, 5),)


def test_records_are_plain_dicts_all_the_way_down() -> None:
    state = OrderState("placed", "c", "EUR", (OrderLine("a", 1, 5), OrderLine("b", 2, 7)))
    record = to_record(state)
    assert record == {
        "status": "placed",
        "customer_id": "c",
        "currency": "EUR",
        "lines": [
            {"sku": "a", "quantity": 1, "unit_price_cents": 5},
            {"sku": "b", "quantity": 2, "unit_price_cents": 7},
        ],
    }
    assert from_record(OrderState, record) == state
