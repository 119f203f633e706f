"""Compatibility policies (streams/wire/governance.py): a context's own `compatibility.json`,
which levels are weaker than others, and subjects that carry the deployment's prefix."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from streams.contexts.orders import context as orders
from streams.wire.governance import LEVELS, PolicyError, load_policy, subjects, weaker
from streams.wire.schemas import catalog_for, schema_dir


@pytest.mark.parametrize(
    ("actual", "declared"),
    [
        ("NONE", "BACKWARD"),
        ("BACKWARD", "BACKWARD_TRANSITIVE"),
        ("FORWARD_TRANSITIVE", "BACKWARD"),
        ("FULL", "FULL_TRANSITIVE"),
        ("BACKWARD_TRANSITIVE", "FULL"),
        ("UNKNOWN", "BACKWARD"),
    ],
)
def test_weaker_levels(actual: str, declared: str) -> None:
    assert weaker(actual, declared)


@pytest.mark.parametrize(
    ("actual", "declared"),
    [
        ("BACKWARD_TRANSITIVE", "BACKWARD"),
        ("FULL", "FORWARD"),
        ("FULL_TRANSITIVE", "BACKWARD_TRANSITIVE"),
        ("NONE", "NONE"),
    ],
)
def test_as_strong_or_stronger(actual: str, declared: str) -> None:
    assert not weaker(actual, declared)


def test_every_level_is_as_strong_as_itself() -> None:
    assert not any(weaker(level, level) for level in LEVELS)


def _own(tmp_path: Path, policy: object) -> object:
    shutil.copytree(schema_dir(orders), tmp_path / "schemas")
    (tmp_path / "schemas" / "compatibility.json").write_text(json.dumps(policy))
    return dataclasses.replace(orders, schema_dir=tmp_path / "schemas")


def test_a_context_declares_its_levels_beside_its_schemas(tmp_path: Path) -> None:
    context = _own(tmp_path, {"default": "FULL", "subjects": {"orders.OrderState": "FULL_TRANSITIVE"}})
    policy = load_policy(context)  # type: ignore[arg-type]
    assert policy["default"] == "FULL" and policy["subjects"] == {"OrderState": "FULL_TRANSITIVE"}
    governed = subjects(context, catalog_for(context), policy, "blue.")  # type: ignore[arg-type]
    by_type = {s.type_name: s for s in governed}
    assert by_type["OrderState"].level == "FULL_TRANSITIVE" and by_type["PlaceOrder"].level == "FULL"
    assert by_type["PlaceOrder"].name == "blue.orders.PlaceOrder"


def test_without_a_file_of_its_own_the_checkout_default_applies(tmp_path: Path) -> None:
    context = dataclasses.replace(orders, schema_dir=tmp_path)
    assert load_policy(context) == {"default": "BACKWARD_TRANSITIVE", "subjects": {}}


@pytest.mark.parametrize(
    ("policy", "says"),
    [
        ({"default": "STRICT"}, "unknown compatibility level 'STRICT'"),
        ({"subjects": {"OrderStat": "FULL"}}, "'OrderStat' is not a command, event or state of orders"),
        ({"subjects": ["OrderState"]}, "expected"),
    ],
)
def test_a_bad_policy_is_refused(tmp_path: Path, policy: object, says: str) -> None:
    with pytest.raises(PolicyError, match=r"compatibility\.json: ") as caught:
        load_policy(_own(tmp_path, policy))  # type: ignore[arg-type]
    assert says in str(caught.value)
