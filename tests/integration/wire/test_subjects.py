"""Registry subjects per deployment, and each context's declared compatibility levels, on the real
registry (Apicurio's Confluent-compatible API).

- Subjects carry the topic prefix: two deployments on one registry never share a subject, so an
  incompatible version registered by one neither breaks nor is refused by the other.
- A worker registers its schemas at start-up, under the registry's global level (NONE here);
  `streams schemas check` fails until `streams schemas register` has set the declared levels.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.cli.schemas import schemas
from streams.contexts.orders import context as orders
from streams.wire.codec import AvroCodec, IncompatibleSchema
from streams.wire.governance import Subject, check, load_policy, register, subjects
from streams.wire.schemas import SchemaCatalog, catalog_for, schema_dir
from streams.wire.topics import subject_name
from tests.conftest import StackEndpoints

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Parcel:
    weight_g: int


def _kilogram_parcel() -> type:
    """Another deployment's `Parcel` class (same record name, other fields)."""

    @dataclass(frozen=True)
    class Parcel:
        weight_kg: float

    return Parcel


def _parcel_dir(root: Path, namespace: str, fields: list[dict[str, str]]) -> Path:
    root.mkdir()
    schema = {"type": "record", "name": "Parcel", "namespace": namespace, "fields": fields}
    (root / "Parcel.v1.avsc").write_text(json.dumps(schema))
    return root


def test_an_incompatible_change_under_one_prefix_leaves_the_other_alone(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    registry = SchemaRegistryClient({"url": stack.registry_url, "timeout": 30})
    ns = f"sj{uuid.uuid4().hex[:8]}"
    prefix_a, prefix_b = f"{ns}-a.", f"{ns}-b."
    grams = _parcel_dir(tmp_path / "a", ns, [{"name": "weight_g", "type": "long"}])
    kilos = _parcel_dir(tmp_path / "b", ns, [{"name": "weight_kg", "type": "double"}])

    # deployment A: Parcel v1 in grams, its subject at BACKWARD_TRANSITIVE
    catalog_a = SchemaCatalog([grams], (Parcel,))
    codec_a = AvroCodec.connect(catalog_a, stack.registry_url, prefix_a)
    subject_a = Subject("Parcel", catalog_a.versions("Parcel"), "BACKWARD_TRANSITIVE", [], prefix_a)
    register(registry, subject_a)
    assert subject_a.name == f"{prefix_a}{ns}.Parcel"

    # deployment B ships a Parcel in kilograms, which A's rules refuse: under its own prefix it
    # registers (before subjects carried the prefix, both used `<ns>.Parcel` and B failed here)
    parcel_b = _kilogram_parcel()
    catalog_b = SchemaCatalog([kilos], (parcel_b,))
    codec_b = AvroCodec.connect(catalog_b, stack.registry_url, prefix_b)
    assert codec_b.decode(codec_b.encode(parcel_b(1.5))).message == parcel_b(1.5)

    # A is untouched: one version, its level, and a restarted A still registers and round-trips
    assert registry.get_versions(subject_a.name) == [1]
    assert registry.get_compatibility(subject_a.name) == "BACKWARD_TRANSITIVE"
    assert json.loads(registry.get_latest_version(subject_a.name).schema.schema_str)["fields"][0]["name"] == (
        "weight_g"
    )
    restarted = AvroCodec.connect(catalog_a, stack.registry_url, prefix_a)
    assert restarted.decode(codec_a.encode(Parcel(250))).message == Parcel(250)
    # and A's own gate still holds: B's schema under A's prefix is refused
    with pytest.raises(IncompatibleSchema, match=f"{prefix_a}{ns}.Parcel v1 refused"):
        AvroCodec.connect(catalog_b, stack.registry_url, prefix_a)


def test_check_fails_until_register_sets_the_declared_levels(stack: StackEndpoints) -> None:
    registry = SchemaRegistryClient({"url": stack.registry_url, "timeout": 30})
    prefix = f"sj{uuid.uuid4().hex[:8]}."
    AvroCodec.connect(catalog_for(orders), stack.registry_url, prefix)  # what a worker does at start
    assert f"{prefix}orders.PlaceOrder" in registry.get_subjects()
    assert registry.get_compatibility() == "NONE", "the shared stack's global level"
    runner = CliRunner()

    result = runner.invoke(schemas, ["check", "orders", "--prefix", prefix])
    assert result.exit_code == 1, result.output
    # Apicurio answers the global level for a subject without its own; a Confluent registry 404s
    # and `check` then asks for the global level
    weaker = "orders.PlaceOrder: registry level NONE"
    assert weaker in result.output and "weaker than the declared BACKWARD_TRANSITIVE" in result.output
    assert "all schema versions are compatible" not in result.output

    result = runner.invoke(schemas, ["register", "orders", "--prefix", prefix])
    assert result.exit_code == 0, result.output
    assert registry.get_compatibility(f"{prefix}orders.PlaceOrder") == "BACKWARD_TRANSITIVE"
    assert registry.get_compatibility(f"{prefix}orders.ItemAdded") == "NONE", "upcasters: enforced locally"

    result = runner.invoke(schemas, ["check", "orders", "--prefix", prefix])
    assert result.exit_code == 0, result.output
    assert "all schema versions are compatible" in result.output


def test_a_context_declares_its_levels_beside_its_schemas(stack: StackEndpoints, tmp_path: Path) -> None:
    """A context outside this repository: its own directory and `compatibility.json`."""
    registry = SchemaRegistryClient({"url": stack.registry_url, "timeout": 30})
    prefix = f"sj{uuid.uuid4().hex[:8]}."
    own = tmp_path / "schemas"
    shutil.copytree(schema_dir(orders), own)
    (own / "compatibility.json").write_text(
        json.dumps({"default": "BACKWARD", "subjects": {"OrderState": "FULL_TRANSITIVE"}})
    )
    context = dataclasses.replace(orders, schema_dir=own)
    policy = load_policy(context)
    governed = {s.type_name: s for s in subjects(context, catalog_for(context), policy, prefix)}
    assert governed["OrderState"].level == "FULL_TRANSITIVE" and governed["PlaceOrder"].level == "BACKWARD"

    for subject in governed.values():
        register(registry, subject)
    state = governed["OrderState"]
    assert registry.get_compatibility(subject_name(prefix, "orders.OrderState")) == "FULL_TRANSITIVE"
    assert check(registry, state) == ([], [])

    # someone lowers the level by hand: BACKWARD lets through what FULL_TRANSITIVE refuses
    registry.set_compatibility(state.name, "BACKWARD")
    errors, _ = check(registry, state)
    assert errors == [
        f"{state.name}: registry level BACKWARD is weaker than the declared FULL_TRANSITIVE "
        "(run `streams schemas register`)"
    ]
    # a stronger level than declared is only a note
    registry.set_compatibility(governed["PlaceOrder"].name, "FULL")
    errors, notes = check(registry, governed["PlaceOrder"])
    assert errors == [] and any("registry level FULL, declared BACKWARD" in n for n in notes)
