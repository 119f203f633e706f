"""`streams.testing`: the given/when/then kit and the conformance check fail when they should."""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from streams.contexts.orders import ConfirmOrder, OrderPlaced, PlaceOrder, ShipOrder
from streams.contexts.orders import context as orders
from streams.core.records import replace_record
from streams.testing import assert_conformant, conformance, given
from tests.compat.samples_tool import SAMPLES


def test_then_and_then_rejected_check_what_they_say() -> None:
    given(orders).when(PlaceOrder("c-1", "EUR")).then(OrderPlaced("c-1", "EUR"))
    given(orders, OrderPlaced("c-1", "EUR")).when(ShipOrder("DHL")).then_rejected("order_not_confirmed")
    with pytest.raises(AssertionError, match="expected rejection 'order_not_found'"):
        given(orders).when(PlaceOrder("c-1", "EUR")).then_rejected("order_not_found")
    with pytest.raises(AssertionError, match="rejected as 'order_not_found'"):
        given(orders).when(ConfirmOrder()).then(OrderPlaced("c", "EUR"))
    with pytest.raises(AssertionError, match="expected"):
        given(orders).when(PlaceOrder("c-1", "EUR")).then(OrderPlaced("c-2", "EUR"))


def test_the_shipped_contexts_are_conformant() -> None:
    assert_conformant(orders, SAMPLES / "orders")


def test_an_impure_evolve_is_caught() -> None:
    ticks = itertools.count()

    def impure(state: Any, event: Any) -> Any:
        return replace_record(orders.evolve(state, event), customer_id=f"c-{next(ticks)}")

    failures = conformance(replace(orders, evolve=impure), SAMPLES / "orders")
    assert any("the state differs from the fold of its events" in f for f in failures), failures


def test_a_state_that_its_schema_cannot_carry_is_caught() -> None:
    def lossy(state: Any, event: Any) -> Any:
        return replace_record(orders.evolve(state, event), customer_id=42)

    failures = conformance(replace(orders, evolve=lossy), SAMPLES / "orders")
    assert any("the state" in f and ("encode" in f or "codec" in f) for f in failures), failures


def test_a_missing_or_changed_sample_is_caught(tmp_path: Path) -> None:
    samples = tmp_path / "orders"
    shutil.copytree(SAMPLES / "orders", samples)
    (samples / "RemoveItem.v1.json").unlink()
    placed = json.loads((samples / "OrderPlaced.v1.json").read_text())
    placed[0]["latest"]["currency"] = "XXX"
    (samples / "OrderPlaced.v1.json").write_text(json.dumps(placed))
    failures = conformance(orders, samples)
    assert any("no sample for RemoveItem v1" in f for f in failures), failures
    assert any(f.startswith("OrderPlaced.v1.json[0]: reads as") for f in failures), failures
