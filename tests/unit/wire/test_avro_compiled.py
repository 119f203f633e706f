"""The generated Avro encoders/decoders agree with fastavro, byte for byte and message for message,
on every schema of every known context; where they cannot, the codec's fastavro path decides."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contexts.registry import contexts
from streams.wire.avro_compiled import compile_decoder, compile_encoder, read_long, zigzag
from streams.wire.codec import AvroCodec, MalformedRecord
from streams.wire.schemas import catalog_for, from_record

_LONG = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
_INT = st.integers(min_value=-(1 << 31), max_value=(1 << 31) - 1)
_TEXT = st.text(max_size=40)


def _strategy(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of one Avro type (record dicts for records), as fastavro writes them."""
    if isinstance(schema, str):
        if schema in named:
            return _strategy(named[schema], named)
        return {
            "null": st.none(), "boolean": st.booleans(), "int": _INT, "long": _LONG,
            "float": st.floats(width=32, allow_nan=False), "double": st.floats(allow_nan=False),
            "bytes": st.binary(max_size=40), "string": _TEXT,
        }[schema]  # fmt: skip
    if isinstance(schema, list):
        return st.one_of([_strategy(branch, named) for branch in schema])
    kind = schema["type"]
    if kind == "record":
        named[schema["name"]] = schema
        if schema.get("namespace"):
            named[f"{schema['namespace']}.{schema['name']}"] = schema
        return st.fixed_dictionaries({f["name"]: _strategy(f["type"], named) for f in schema["fields"]})
    if kind == "array":
        return st.lists(_strategy(schema["items"], named), max_size=5)
    if kind == "map":
        return st.dictionaries(_TEXT, _strategy(schema["values"], named), max_size=4)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    return _strategy(kind, named)


def _schemas() -> list[tuple[str, type, dict[str, Any], Any]]:
    out = []
    for name, context in contexts().items():
        catalog = catalog_for(context)
        for type_name, cls in catalog.types.items():
            latest = catalog.latest(type_name)
            out.append((f"{name}.{type_name}", cls, json.loads(latest.text), latest.parsed))
    return out


@dataclass(frozen=True)
class Point:
    """A nested record of the synthetic schema."""

    x: float
    label: str | None


@dataclass(frozen=True)
class EveryType:
    """A record with every Avro type the generator compiles."""

    flag: bool
    small: int
    big: int
    ratio: float
    exact: float
    blob: bytes
    colour: str
    tags: dict[str, int]
    points: tuple[Point, ...]
    origin: Point
    note: str | None
    nothing: None


EVERY_TYPE = {
    "type": "record", "name": "EveryType", "namespace": "test",
    "fields": [
        {"name": "flag", "type": "boolean"},
        {"name": "small", "type": "int"},
        {"name": "big", "type": "long"},
        {"name": "ratio", "type": "float"},
        {"name": "exact", "type": "double"},
        {"name": "blob", "type": "bytes"},
        {"name": "colour", "type": {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]}},
        {"name": "tags", "type": {"type": "map", "values": "long"}},
        {"name": "points", "type": {"type": "array", "items": {
            "type": "record", "name": "Point",
            "fields": [{"name": "x", "type": "double"}, {"name": "label", "type": ["null", "string"]}],
        }}},
        {"name": "origin", "type": "Point"},
        {"name": "note", "type": ["string", "null"]},
        {"name": "nothing", "type": "null"},
    ],
}  # fmt: skip

SCHEMAS = [*_schemas(), ("synthetic.EveryType", EveryType, EVERY_TYPE, fastavro.parse_schema(EVERY_TYPE))]


@pytest.mark.parametrize(("name", "cls", "schema", "parsed"), SCHEMAS, ids=[s[0] for s in SCHEMAS])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_code_writes_and_reads_what_fastavro_does(
    name: str, cls: type, schema: dict[str, Any], parsed: Any, data: st.DataObject
) -> None:
    record = data.draw(_strategy(schema, {}))
    expected = io.BytesIO()
    fastavro.schemaless_writer(expected, parsed, record)
    header = b"\x00\x00\x00\x00\x07"
    message = from_record(cls, record)
    assert compile_encoder(schema, cls, header)(message) == header + expected.getvalue()
    assert compile_encoder(schema, None, header)(record) == header + expected.getvalue()
    read_back = fastavro.schemaless_reader(io.BytesIO(expected.getvalue()), parsed, parsed)
    assert compile_decoder(schema, cls)(header + expected.getvalue(), len(header)) == from_record(
        cls, read_back
    )


@given(_LONG)
def test_varints_round_trip(n: int) -> None:
    assert read_long(zigzag(n), 0) == (n, len(zigzag(n)))


def _orders_codec() -> tuple[AvroCodec, Any]:
    from streams.contexts import orders

    return AvroCodec.offline(catalog_for(orders.context)), orders


def test_a_value_of_the_wrong_type_fails_as_fastavro_fails() -> None:
    codec, orders = _orders_codec()
    bad = orders.AddItem("sku-1", "three", 100)  # type: ignore[arg-type]
    with pytest.raises(Exception) as compiled:
        codec.encode(bad)
    with pytest.raises(Exception) as interpreted:
        fastavro.schemaless_writer(io.BytesIO(), catalog_for(orders.context).latest("AddItem").parsed, {
            "sku": "sku-1", "quantity": "three", "unit_price_cents": 100, "currency": None,
        })  # fmt: skip
    assert type(compiled.value) is type(interpreted.value)


def test_truncated_and_padded_records_are_malformed() -> None:
    codec, orders = _orders_codec()
    good = codec.encode(orders.AddItem("sku-1", 3, 100, "EUR"))
    assert codec.decode(good).message == orders.AddItem("sku-1", 3, 100, "EUR")
    for broken in (good[:-2], good[:6]):
        with pytest.raises(MalformedRecord):
            codec.decode(broken)


def test_numbers_past_the_small_varint_table_take_the_long_path() -> None:
    codec, orders = _orders_codec()
    for quantity in (8191, 8192, -8193, (1 << 63) - 1, -(1 << 63)):
        item = orders.AddItem("s", quantity, 1)
        assert codec.decode(codec.encode(item)).message == item
    with pytest.raises(Exception):  # noqa: B017 - fastavro's own overflow error
        codec.encode(orders.AddItem("s", 1 << 63, 1))
