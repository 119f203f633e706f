"""The write side's state format: MessagePack rows written, the older version + Avro still read."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from streams.contexts.orders import OrderLine, OrderState
from streams.contexts.orders import context as orders
from streams.core.commands import Aggregate
from streams.kafka.runtime import ContextRuntime
from streams.wire.state import ROWS, StateFormat

STATE = OrderState("placed", "cust-1", "EUR", tuple(OrderLine(f"sku-{i}", i + 1, 100 * i) for i in range(7)))


def test_rows_round_trip_and_are_smaller_than_avro() -> None:
    states = ContextRuntime.offline(orders, prefix="x.").states
    raw = states.encode(Aggregate(12, STATE))
    assert raw[:1] == ROWS and states.decode(raw) == Aggregate(12, STATE)
    assert len(raw) <= len(states.encode_avro(Aggregate(12, STATE)))


def test_a_changelog_written_by_an_older_worker_is_read() -> None:
    states = ContextRuntime.offline(orders, prefix="x.").states
    old = states.encode_avro(Aggregate(3, STATE))
    assert old[:1] == b"\x00"  # big-endian version: the formats differ in their first byte
    assert states.decode(old) == Aggregate(3, STATE)


@dataclass(frozen=True)
class Before:
    """A dataclass state, before it gained a field."""

    name: str
    count: int


@dataclass(frozen=True)
class After:
    """The same state with a new field at its end (a default)."""

    name: str
    count: int
    tags: tuple[str, ...] = ()


class AfterStruct(msgspec.Struct, frozen=True):
    """The same, as a msgspec Struct."""

    name: str
    count: int
    tags: tuple[str, ...] = ()


def test_a_state_class_that_gained_a_field_reads_older_rows_with_its_default() -> None:
    codec = ContextRuntime.offline(orders, prefix="x.").codec
    raw = StateFormat(Before, codec).encode(Aggregate(5, Before("a", 2)))
    assert StateFormat(After, codec).decode(raw) == Aggregate(5, After("a", 2))
    assert StateFormat(AfterStruct, codec).decode(raw) == Aggregate(5, AfterStruct("a", 2))
    both = StateFormat(AfterStruct, codec)
    assert both.decode(both.encode(Aggregate(6, AfterStruct("b", 1, ("x",))))) == Aggregate(
        6, AfterStruct("b", 1, ("x",))
    )
