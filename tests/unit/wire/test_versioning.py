"""Event versioning without Kafka: the compatibility gate over the stored samples, upcaster
chains, and the DLQ reasons for versions that cannot be read.

Everything decodes through `AvroCodec.decode` (an offline codec: locally assigned ids, the same
read plans as with registry ids).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from streams.contexts.orders import (
    ItemAdded,
    OrderPlaced,
    OrderShipped,
)
from streams.contexts.orders import (
    context as orders,
)
from streams.contexts.registry import contexts
from streams.core.decider import BoundedContext
from streams.core.views import EventMeta, fold_view
from streams.testing import conformance
from streams.wire.codec import AvroCodec, NoUpcasterPath, UnknownSchema, UpcastFailed
from streams.wire.schemas import FRAMEWORK_TYPES, SCHEMAS_DIR, SchemaCatalog, SchemaFileError, catalog_for
from tests.compat.samples_tool import SAMPLES

# --- the compatibility gate -------------------------------------------------------------------


def gate(context: BoundedContext[Any], catalog: SchemaCatalog) -> list[str]:
    """Every stored sample of every version decodes to its expected latest record, and the
    decoded history goes through `decide`, `evolve` and every projection (the conformance check
    of `streams.testing`). Returns the failures."""
    return conformance(context, SAMPLES / context.name, catalog)


@pytest.mark.parametrize("name", sorted(contexts()))
def test_every_stored_version_still_decodes_upcasts_and_folds(name: str) -> None:
    context = contexts()[name]
    assert gate(context, catalog_for(context)) == []


def test_the_gate_fails_when_a_new_version_breaks_a_stored_one(tmp_path: Path) -> None:
    # ItemAdded v3 renames the price again, without an upcaster from v2: v1/v2 events are unreadable
    shutil.copytree(SCHEMAS_DIR / "orders", tmp_path / "orders")
    v3 = json.loads((SCHEMAS_DIR / "orders" / "ItemAdded.v2.avsc").read_text())
    v3["fields"][2] = {"name": "price", "type": "long"}
    (tmp_path / "orders" / "ItemAdded.v3.avsc").write_text(json.dumps(v3))
    types = (*orders.commands, *orders.events, orders.state_type, *FRAMEWORK_TYPES)
    broken = SchemaCatalog([tmp_path / "orders", SCHEMAS_DIR / "streams"], types, orders.upcasters)
    failures = gate(orders, broken)
    assert any("ItemAdded.v1.json[0]: no_upcaster_path" in f for f in failures), failures
    assert any("ItemAdded.v2.json[0]: no_upcaster_path" in f for f in failures), failures
    assert any("no sample for ItemAdded v3" in f for f in failures), failures


def test_a_mixed_log_folds_like_the_same_log_written_with_the_latest_versions() -> None:
    codec = AvroCodec.offline(catalog_for(orders))
    old = [
        codec.encode_record("OrderPlaced", 1, {"customer_id": "c-1", "currency": "EUR"}),
        codec.encode_record("ItemAdded", 1, {"sku": "a", "quantity": 2, "unit_price_cents": 150}),
        codec.encode(ItemAdded("b", 1, 99)),
        codec.encode_record("ItemAdded", 1, {"sku": "a", "quantity": 1, "unit_price_cents": 150}),
        codec.encode_record("OrderConfirmed", 1, {"total_cents": 549}),
        codec.encode_record("OrderShipped", 1, {"carrier": "DHL"}),
    ]
    new = [OrderPlaced("c-1", "EUR"), ItemAdded("a", 2, 150), ItemAdded("b", 1, 99), ItemAdded("a", 1, 150)]
    new += [orders.event_names["OrderConfirmed"](549), OrderShipped("DHL")]
    decoded = [codec.decode(raw) for raw in old]
    assert [d.schema_version for d in decoded] == [1, 1, 2, 1, 1, 1]
    assert [d.message for d in decoded] == new
    assert orders.fold([d.message for d in decoded]) == orders.fold(new)
    metas = [EventMeta("o-1", i + 1, type(e).__name__, "t") for i, e in enumerate(new)]
    for view in orders.views:
        mixed = fold_view(view, list(zip([d.message for d in decoded], metas, strict=True)))
        assert mixed == fold_view(view, list(zip(new, metas, strict=True)))
    summary = fold_view(orders.views[0], list(zip(new, metas, strict=True)))["o-1"].state
    assert summary is not None and summary["total_cents"] == 549 and summary["status"] == "shipped"


def test_a_producer_on_an_old_command_version_is_read_as_the_latest() -> None:
    codec = AvroCodec.offline(catalog_for(orders))
    v1 = codec.decode(codec.encode_record("AddItem", 1, {"sku": "a", "quantity": 1, "unit_price_cents": 5}))
    assert v1.schema_version == 1 and v1.message == orders.command_names["AddItem"]("a", 1, 5, None)
    ship = codec.decode(codec.encode_record("ShipOrder", 1, {"carrier": "DHL"}))
    assert ship.message == orders.command_names["ShipOrder"]("DHL", "")


# --- upcaster chains on a toy context -----------------------------------------------------------


@dataclass(frozen=True)
class Parcel:
    """v1 {weight_g}, v2 {weight_kg: double}, v3 {weight_kg, unit = "kg"}, v4 {mass: {value, unit}}."""

    mass: Mass


@dataclass(frozen=True)
class Mass:
    value: float
    unit: str = "kg"


@dataclass(frozen=True)
class Sent:
    """A command: v1 {to}, v2 {recipient} (renamed, with an upcaster)."""

    recipient: str


def _schema(name: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "toy", "fields": fields}


MASS = {
    "type": "record",
    "name": "Mass",
    "namespace": "toy",
    "fields": [{"name": "value", "type": "double"}, {"name": "unit", "type": "string", "default": "kg"}],
}
PARCEL = {
    1: [{"name": "weight_g", "type": "long"}],
    2: [{"name": "weight_kg", "type": "double"}],
    3: [{"name": "weight_kg", "type": "double"}, {"name": "unit", "type": "string", "default": "kg"}],
    4: [{"name": "mass", "type": MASS}],
}


def g_to_kg(record: dict[str, Any]) -> dict[str, Any]:
    return {"weight_kg": record["weight_g"] / 1000}


def into_mass(record: dict[str, Any]) -> dict[str, Any]:
    return {"mass": {"value": record["weight_kg"], "unit": record["unit"]}}


def to_recipient(record: dict[str, Any]) -> dict[str, Any]:
    return {"recipient": record["to"]}


def toy_codec(
    tmp_path: Path, upcasters: dict[tuple[str, int], Any], parcel: dict[int, Any] = PARCEL
) -> AvroCodec:
    for version, fields in parcel.items():
        (tmp_path / f"Parcel.v{version}.avsc").write_text(json.dumps(_schema("Parcel", fields)))
    (tmp_path / "Sent.v1.avsc").write_text(json.dumps(_schema("Sent", [{"name": "to", "type": "string"}])))
    (tmp_path / "Sent.v2.avsc").write_text(
        json.dumps(_schema("Sent", [{"name": "recipient", "type": "string"}]))
    )
    return AvroCodec.offline(SchemaCatalog([tmp_path], (Parcel, Sent), upcasters))


UPCASTERS = {("Parcel", 1): g_to_kg, ("Parcel", 3): into_mass, ("Sent", 1): to_recipient}


def test_a_chain_of_upcasters_and_resolution_hops_reaches_the_latest_version(tmp_path: Path) -> None:
    codec = toy_codec(tmp_path, UPCASTERS)
    # v1 -> (upcaster) v2 -> (Avro resolution: unit gets its default) v3 -> (upcaster) v4
    assert codec.decode(codec.encode_record("Parcel", 1, {"weight_g": 2500})).message == Parcel(Mass(2.5))
    # v2 -> (resolution) v3 -> (upcaster) v4; v3 -> (upcaster) v4; v4 as written
    assert codec.decode(codec.encode_record("Parcel", 2, {"weight_kg": 1.5})).message == Parcel(Mass(1.5))
    v3 = codec.encode_record("Parcel", 3, {"weight_kg": 3.0, "unit": "lb"})
    assert codec.decode(v3).message == Parcel(Mass(3.0, "lb"))
    assert codec.decode(codec.encode(Parcel(Mass(4.0)))).message == Parcel(Mass(4.0))
    assert [codec.decode(codec.encode_record("Parcel", 1, {"weight_g": 1})).schema_version] == [1]


def test_commands_are_upcast_the_same_way(tmp_path: Path) -> None:
    codec = toy_codec(tmp_path, UPCASTERS)
    assert codec.decode(codec.encode_record("Sent", 1, {"to": "bob"})).message == Sent("bob")


def test_a_version_without_upcaster_path_is_refused_with_a_clear_reason(tmp_path: Path) -> None:
    codec = toy_codec(tmp_path, {("Parcel", 3): into_mass})  # nothing from v1 (weight_g) to v2
    with pytest.raises(NoUpcasterPath) as info:
        codec.decode(codec.encode_record("Parcel", 1, {"weight_g": 2500}))
    assert info.value.reason == "no_upcaster_path" and "Parcel v1 -> v3: no upcaster" in str(info.value)
    with pytest.raises(NoUpcasterPath):  # the command rename without its upcaster
        codec.decode(codec.encode_record("Sent", 1, {"to": "bob"}))


def test_a_failing_or_wrong_upcaster_is_refused_not_half_applied(tmp_path: Path) -> None:
    def broken(record: dict[str, Any]) -> dict[str, Any]:
        raise KeyError("weight")

    def wrong(record: dict[str, Any]) -> dict[str, Any]:
        return {"mass": {"value": "heavy"}}

    codec = toy_codec(tmp_path, {**UPCASTERS, ("Parcel", 1): broken})
    with pytest.raises(UpcastFailed) as info:
        codec.decode(codec.encode_record("Parcel", 1, {"weight_g": 1}))
    assert info.value.reason == "upcast_failed" and "Parcel v1 -> v2" in str(info.value)
    codec = toy_codec(tmp_path, {**UPCASTERS, ("Parcel", 3): wrong})
    with pytest.raises(UpcastFailed):
        codec.decode(codec.encode_record("Parcel", 3, {"weight_kg": 1.0}))


def test_an_upcaster_needs_both_schema_versions(tmp_path: Path) -> None:
    with pytest.raises(SchemaFileError, match="Parcel v4 -> v5"):
        toy_codec(tmp_path, {("Parcel", 4): into_mass})


def test_read_plans_are_compiled_once_per_schema_id(tmp_path: Path) -> None:
    codec = toy_codec(tmp_path, UPCASTERS)
    plan = codec._readers[codec.schema_id_of("Parcel", 1)]
    assert len(plan.steps) == 3 and plan.reader is None  # upcast, hop, upcast; read with v1 itself
    latest = codec._readers[codec.schema_id_of("Parcel", 4)]
    assert latest.steps == ()


def test_an_unknown_schema_id_is_refused() -> None:
    codec = AvroCodec.offline(catalog_for(orders))
    with pytest.raises(UnknownSchema) as info:
        codec.decode(b"\x00\x00\x0f\x42\x40" + b"\x02")
    assert info.value.reason == "unknown_schema"
