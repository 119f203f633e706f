"""Avro schemas derived from record classes (streams/wire/derive.py): the mapping, round trips
through the codec, refusals, and the built-in contexts' hand-written files equal to what would be
generated."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import msgspec
import pytest
from msgspec import Meta, Struct

from streams.contexts import orders
from streams.contexts.devices import context as devices
from streams.contexts.orders import context as orders_context
from streams.wire.codec import AvroCodec
from streams.wire.derive import (
    UnsupportedType,
    agreement,
    derive_schema,
    derive_schemas,
    disagreement,
    plan,
    write,
)
from streams.wire.schemas import SchemaCatalog, catalog_for

# --- classes of every supported shape ----------------------------------------------------------


class Line(Struct, frozen=True):
    """One line."""

    sku: str
    quantity: int = 1


class Everything(Struct, frozen=True):
    """A record with every supported field type.

    Its doc is this docstring, on one line.
    """

    text: Annotated[str, Meta(max_length=12, description="a short text")]
    count: int
    ratio: float
    flag: bool
    blob: bytes
    line: Line
    lines: tuple[Line, ...] = ()
    maybe: Annotated[str, Meta(max_length=3)] | None = None
    tags: tuple[str, ...] = ("a",)
    numbers: tuple[int, ...] = msgspec.field(default_factory=tuple)
    scores: dict[str, float] = msgspec.field(default_factory=dict)
    kind: Literal["x", "y"] = "x"
    level: Literal[1, 2, 3] = 1
    fallback: str | None = "none"


@dataclass(frozen=True)
class Plain:
    count: int
    names: tuple[str, ...] = ()
    note: str = ""


def _codec(tmp_path: Path, *classes: type) -> AvroCodec:
    for cls in classes:
        (tmp_path / f"{cls.__name__}.v1.avsc").write_text(json.dumps(derive_schema(cls, "test")))
    return AvroCodec.offline(SchemaCatalog([tmp_path], classes))


def test_every_supported_type_maps_to_avro() -> None:
    schema = derive_schema(Everything, "test")
    assert schema["doc"] == (
        "A record with every supported field type. Its doc is this docstring, on one line."
    )
    fields = {f["name"]: f for f in schema["fields"]}
    assert fields["text"] == {"name": "text", "type": "string", "doc": "a short text", "maxLength": 12}
    primitives = [fields[n]["type"] for n in ("count", "ratio", "flag", "blob")]
    assert primitives == ["long", "double", "boolean", "bytes"]
    assert fields["line"]["type"]["name"] == "Line" and fields["line"]["type"]["doc"] == "One line."
    lines = {"name": "lines", "type": {"type": "array", "items": "test.Line"}, "default": []}
    assert fields["lines"] == lines
    assert fields["maybe"] == {"name": "maybe", "type": ["null", "string"], "default": None, "maxLength": 3}
    assert fields["tags"]["default"] == ["a"]
    assert fields["numbers"]["type"] == {"type": "array", "items": "long"}
    assert fields["scores"] == {"name": "scores", "type": {"type": "map", "values": "double"}, "default": {}}
    assert fields["kind"]["type"] == "string" and fields["level"]["type"] == "long"
    assert fields["fallback"] == {"name": "fallback", "type": ["string", "null"], "default": "none"}
    assert "default" not in fields["count"]


def test_a_dataclass_without_docstring_has_no_doc() -> None:
    schema = derive_schema(Plain, "test")
    assert "doc" not in schema
    names = {"name": "names", "type": {"type": "array", "items": "string"}, "default": []}
    assert schema["fields"][1] == names


@pytest.mark.parametrize(
    "message",
    [
        Everything(
            "hi",
            3,
            0.5,
            True,
            b"\x00\xff",
            Line("a"),
            (Line("b", 2), Line("c")),
            "EUR",
            ("t",),
            (1, 2),
            {"k": 1.5},
            "y",
            3,
            None,
        ),
        Everything("", -(2**63), -1.25, False, b"", Line("z", 0)),
    ],
)
def test_an_instance_round_trips_through_its_derived_schema(tmp_path: Path, message: Everything) -> None:
    codec = _codec(tmp_path, Everything)
    assert codec.decode(codec.encode(message)).message == message


def test_a_dataclass_round_trips_through_its_derived_schema(tmp_path: Path) -> None:
    codec = _codec(tmp_path, Plain)
    assert codec.decode(codec.encode(Plain(7, ("a", "b"), "n"))).message == Plain(7, ("a", "b"), "n")


# --- refusals ------------------------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"


def _one_field(annotation: object, default: object = dataclasses.MISSING) -> type:
    field = ("value", annotation) if default is dataclasses.MISSING else ("value", annotation, default)
    return dataclasses.make_dataclass("Odd", [field], frozen=True)


@pytest.mark.parametrize(
    ("annotation", "says"),
    [
        (datetime.datetime, "use `str` (ISO-8601"),
        (decimal.Decimal, "use `int` minor units"),
        (Colour, "Literal"),
        (int | str, "only `X | None` unions"),
        (tuple[int, str], "fixed tuples"),
        (dict[int, str], "map keys must be `str`"),
        (Line | None, "optional nested record"),
        (list[int], "use `tuple[X, ...]`"),
        (dict[str, Line], "records as map values"),
        (Literal["a", 1], "only strings or only integers"),
        (object, "no Avro mapping"),
    ],
)
def test_unsupported_types_are_refused_naming_the_field(annotation: object, says: str) -> None:
    with pytest.raises(UnsupportedType, match=r"^Odd\.value: ") as caught:
        derive_schema(_one_field(annotation), "test")
    assert says in str(caught.value)


def test_a_default_without_json_form_is_refused() -> None:
    with pytest.raises(UnsupportedType, match=r"Odd\.value: default"):
        derive_schema(_one_field(str, Path("x")), "test")


# --- the built-in contexts: hand-written files equal the generated ones -------------------------


@pytest.mark.parametrize("context", [orders_context, devices], ids=lambda c: c.name)
def test_the_hand_written_schemas_equal_the_generated_ones(context: object) -> None:
    """Exactly, doc and defaults and field order included: the classes are the single source."""
    catalog = catalog_for(context)  # type: ignore[arg-type]
    derived = derive_schemas(context)  # type: ignore[arg-type]
    assert set(derived) >= {"OrderState"} or context is devices
    for type_name, schema in derived.items():
        assert schema == catalog.latest(type_name).raw, type_name
    assert agreement(context, catalog) == ([], [])  # type: ignore[arg-type]


def test_generate_writes_nothing_for_the_built_in_contexts(tmp_path: Path) -> None:
    from streams.wire.schemas import schema_dir

    assert all(p.path is None for p in plan(orders_context, schema_dir(orders_context)))


# --- drift: the next version, never an edit ------------------------------------------------------


def test_a_changed_class_gets_the_next_version_and_fails_agreement(tmp_path: Path) -> None:
    for p in plan(orders_context, tmp_path):
        write(p)
    assert (tmp_path / "OrderState.v1.avsc").exists()

    class OrderPlaced(orders.OrderPlaced, frozen=True):
        """An order was opened."""

        channel: str = "web"

    changed = dataclasses.replace(
        orders_context,
        events=tuple(OrderPlaced if e is orders.OrderPlaced else e for e in orders_context.events),
        schema_dir=tmp_path,
        upcasters={},  # the fresh directory holds only the latest versions
    )
    planned = {p.type_name: p for p in plan(changed, tmp_path)}
    assert planned["OrderPlaced"].path == tmp_path / "OrderPlaced.v2.avsc"
    added = '+ channel: {"default":"web","type":"string"} (in the class, not in the file)'
    assert planned["OrderPlaced"].changes == (added,)
    assert planned["OrderState"].path is None
    problems, _ = agreement(changed, catalog_for(changed))
    assert len(problems) == 1 and "OrderPlaced.v1.avsc disagree" in problems[0]
    write(planned["OrderPlaced"])
    assert agreement(changed, catalog_for(changed)) == ([], [])


def test_docs_do_not_make_a_disagreement() -> None:
    schema = derive_schema(Line, "test")
    assert disagreement(schema, {**schema, "doc": "other words"}) == []
    nested_ns = {**schema, "name": "test.Line"}
    del nested_ns["namespace"]
    assert disagreement(schema, nested_ns) == []
