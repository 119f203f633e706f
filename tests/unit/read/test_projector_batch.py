"""A projector batch, without Kafka: records in, documents stored and published once per batch.

The stage's consumer and producer are not involved: `handle` folds records into a `Batch` and
`complete` turns it into the store writes and the output records the stage then produces.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Message

from streams.config import Settings
from streams.contexts.orders import VIEWS, ItemAdded, OrderPlaced
from streams.contexts.orders import context as orders
from streams.kafka.runtime import ContextRuntime
from streams.kafka.store import PartitionStore
from streams.read.documents import DOC_PREFIX, decode_document
from streams.read.projector import Batch, ViewProjector
from streams.wire import headers as h

SUMMARY = VIEWS[0]
EVENTS = "t.orders.events"


@pytest.fixture
def projector(tmp_path: Path) -> Iterator[ViewProjector]:
    runtime = ContextRuntime.offline(orders, prefix="t.")
    stage = ViewProjector(
        replace(Settings(), data_dir=str(tmp_path)),
        runtime,
        SUMMARY,
        1,
        group_id="g",
        inputs=[EVENTS],
        data_dir=tmp_path,
        client_id="c",
    )
    stage.stores[0] = PartitionStore(tmp_path / "p0")
    yield stage
    stage.stores[0].close()


def event(projector: ViewProjector, order: str, version: int, body: object, offset: int) -> Message:
    codec = projector.runtime.codec
    headers = h.event_headers(
        event_type=type(body).__name__,
        schema_version=codec.version_of(type(body)),
        aggregate_type="Order",
        aggregate_id=order,
        aggregate_version=version,
        command_id=f"cmd-{offset}",
        correlation_id="",
        occurred_at=f"2026-11-26T12:00:0{version}.000Z",
    )
    return Message(
        topic=EVENTS,
        partition=0,
        offset=offset,
        key=order.encode(),
        value=codec.encode(body),
        headers=headers,
    )


def run_batch(projector: ViewProjector, records: list[Message]) -> Batch:
    batch = Batch(dict(projector.stores))
    for record in records:
        projector.handle(record, batch)
    projector.complete(batch)
    projector.stores[0].write(batch.writes.get(0, {}), {EVENTS: records[-1].offset() + 1})
    return batch


def published(projector: ViewProjector, batch: Batch) -> dict[str, dict[str, object]]:
    out = {}
    for record in batch.out:
        assert record.topic == projector.output and record.key is not None and record.value is not None
        out[record.key.decode()] = json.loads(projector.runtime.codec.decode(record.value).message.state)
    return out


def test_a_document_changed_several_times_in_a_batch_is_stored_and_published_once(
    projector: ViewProjector,
) -> None:
    batch = run_batch(
        projector,
        [
            event(projector, "o-1", 1, OrderPlaced("c-1", "EUR"), 0),
            event(projector, "o-1", 2, ItemAdded("a", 2, 100), 1),
            event(projector, "o-2", 1, OrderPlaced("c-2", "USD"), 2),
            event(projector, "o-1", 3, ItemAdded("a", 1, 100), 3),
        ],
    )
    docs = published(projector, batch)
    assert len(batch.out) == 2, "one output record per document, in its last state"
    assert docs["o-1"]["version"] == 3 and docs["o-1"]["items"] == [
        {"sku": "a", "quantity": 3, "unit_price_cents": 100}
    ]
    assert docs["o-2"]["status"] == "placed"
    stored = projector.stores[0].get(DOC_PREFIX + b"o-1")
    assert stored is not None and decode_document("o-1", stored).last_event_version == 3


def test_an_event_seen_in_an_earlier_batch_changes_nothing_and_publishes_nothing(
    projector: ViewProjector,
) -> None:
    placed = event(projector, "o-3", 1, OrderPlaced("c-3", "EUR"), 0)
    run_batch(projector, [placed])
    again = run_batch(projector, [placed])
    assert again.out == [] and again.writes == {}
