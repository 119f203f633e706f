"""Views whose key moves during an aggregate's life (no Kafka): the reference fold, the
repartitioner's retraction records, and the projector folding them; plus the failover
bookkeeping every published document now carries (its versions, the input position)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message

from streams.config import Settings
from streams.contexts.orders import OrderCancelled, OrderConfirmed, OrderPlaced, OrderShipped
from streams.core.views import Document, EventMeta, View, apply_retraction, fold_view
from streams.kafka.runtime import ContextRuntime
from streams.kafka.store import PartitionStore
from streams.read.batch import Batch
from streams.read.documents import DOC_PREFIX, decode_document
from streams.read.projector import ViewProjector
from streams.read.repartitioner import KEY_PREFIX, POSITION_KEY, Repartitioner
from streams.wire import headers as h
from streams.wire.topics import partition_for
from tests.integration.fussy_orders import BY_STATUS

T = "2026-01-01T00:00:00Z"
EVENTS = "t.orders.events"


def meta(aggregate: str, version: int) -> EventMeta:
    return EventMeta(aggregate, version, "", T)


def test_the_reference_fold_moves_an_order_between_status_documents() -> None:
    log = [
        (OrderPlaced("c", "EUR"), meta("o-1", 1)),
        (OrderPlaced("c", "EUR"), meta("o-2", 1)),
        (OrderConfirmed(5), meta("o-1", 2)),
        (OrderShipped("DHL"), meta("o-1", 3)),
        (OrderCancelled("no"), meta("o-2", 2)),
    ]
    docs = fold_view(BY_STATUS, log)
    alive = {key: doc.state for key, doc in docs.items() if doc.state is not None}
    assert alive == {
        "c:shipped": {"orders": ["o-1"], "count": 1},
        "c:cancelled": {"orders": ["o-2"], "count": 1},
    }
    # the documents the orders left keep their versions: a repeated retraction changes nothing
    assert docs["c:placed"].state is None and docs["c:placed"].versions == {"o-1": 2, "o-2": 2}
    assert docs["c:confirmed"].state is None
    assert fold_view(BY_STATUS, log + log) == docs


def test_a_retraction_updates_a_shared_document_and_deletes_a_single_ones() -> None:
    shared = Document("c:placed", {"orders": ["o-1", "o-2"], "count": 2}, {"o-1": 1, "o-2": 1}, 1, T)
    after = apply_retraction(BY_STATUS, shared, meta("o-1", 2))
    assert after is not None and after.state == {"orders": ["o-2"], "count": 1}
    assert apply_retraction(BY_STATUS, after, meta("o-1", 2)) is None  # seen already
    plain = View("per-order", lambda s, e, m: {"x": 1}, key_by=lambda e, p: "k")  # no retract
    single = Document("k", {"x": 1}, {"o-1": 1}, 1, T)
    deleted = apply_retraction(plain, single, meta("o-1", 2))
    assert deleted is not None and deleted.state is None and deleted.versions == {"o-1": 2}


def message(
    runtime: ContextRuntime, topic: str, key: str, version: int, body: Any, offset: int, partition: int = 0
) -> Message:
    headers = h.event_headers(
        event_type=type(body).__name__, schema_version=runtime.codec.version_of(type(body)),
        aggregate_type="Order", aggregate_id="o-1", aggregate_version=version, command_id=f"c{offset}",
        correlation_id="", occurred_at=T,
    )  # fmt: skip
    return Message(
        topic=topic, partition=partition, offset=offset, key=key.encode(), value=runtime.codec.encode(body),
        headers=headers,
    )  # fmt: skip


@pytest.fixture
def runtime() -> ContextRuntime:
    from tests.integration.fussy_orders import context

    return ContextRuntime.offline(context, prefix="t.")


def stage(cls: type, runtime: ContextRuntime, tmp_path: Path, inputs: list[str]) -> Any:
    settings = replace(Settings(), data_dir=tmp_path, partitions=4)
    made = cls(settings, runtime, BY_STATUS, 1, group_id="g", inputs=inputs, data_dir=tmp_path, client_id="c")
    for p in range(4):
        made.stores[p] = PartitionStore(tmp_path / f"p{p}")
    return made


@pytest.fixture
def repartitioner(runtime: ContextRuntime, tmp_path: Path) -> Iterator[Repartitioner]:
    made = stage(Repartitioner, runtime, tmp_path / "r", [EVENTS])
    yield made
    for store in made.stores.values():
        store.close()


def fold(made: Any, records: list[Message]) -> Batch:
    batch = Batch(dict(made.stores))
    for record in records:
        made.handle(record, batch)
        batch.positions.setdefault(record.partition(), {})[record.topic()] = record.offset() + 1
    made.complete(batch)
    for partition, positions in batch.positions.items():
        made.stores[partition].write(batch.writes.get(partition, {}), positions)
    return batch


def test_the_repartitioner_retracts_the_old_key_then_sends_the_event_to_the_new_one(
    repartitioner: Repartitioner, runtime: ContextRuntime
) -> None:
    fold(repartitioner, [message(runtime, EVENTS, "o-1", 1, OrderPlaced("c", "EUR"), 0)])
    batch = fold(repartitioner, [message(runtime, EVENTS, "o-1", 2, OrderConfirmed(5), 1)])
    out = [(o.topic, o.key, o.value is None, dict(o.headers).get(h.RETRACT)) for o in batch.out]
    keys_topic, rekeyed = runtime.topics.repartition_keys("orders-by-status", 1), repartitioner.output
    assert out == [
        (keys_topic, b"o-1", False, None),  # the aggregate's key, for a new owner to restore
        (rekeyed, b"c:placed", True, b"1"),  # the retraction, to the old key's partition
        (rekeyed, b"c:confirmed", False, None),  # the event, to the new key
        (keys_topic, POSITION_KEY, False, None),  # how far the partition is folded
    ]
    retraction = batch.out[1]
    assert retraction.partition == partition_for(b"c:placed", 4)
    assert dict(retraction.headers)[h.AGGREGATE_VERSION] == b"2"
    assert dict(batch.out[3].headers)[h.VIEW_POSITION] == b"2"
    assert repartitioner.stores[0].get(KEY_PREFIX + b"o-1") == b"c:confirmed"


PER_STATUS_CHANGE = View(
    "status-history",
    lambda s, e, m: {"event": type(e).__name__},
    key_by=lambda e, p: f"{type(e).__name__}",
    keep_on_move=True,
)
"""A document per kind of event (a part of the order's history, like a time window)."""


def test_a_view_that_keeps_moved_documents_retracts_nothing(runtime: ContextRuntime, tmp_path: Path) -> None:
    log = [(OrderPlaced("c", "EUR"), meta("o-1", 1)), (OrderConfirmed(5), meta("o-1", 2))]
    docs = fold_view(PER_STATUS_CHANGE, log)
    assert {k: d.state for k, d in docs.items()} == {
        "OrderPlaced": {"event": "OrderPlaced"},
        "OrderConfirmed": {"event": "OrderConfirmed"},
    }
    settings = replace(Settings(), data_dir=tmp_path, partitions=4)
    made = Repartitioner(
        settings,
        runtime,
        PER_STATUS_CHANGE,
        1,
        group_id="g",
        inputs=[EVENTS],
        data_dir=tmp_path,
        client_id="c",
    )
    for p in range(4):
        made.stores[p] = PartitionStore(tmp_path / f"k{p}")
    try:
        fold(made, [message(runtime, EVENTS, "o-1", 1, OrderPlaced("c", "EUR"), 0)])
        batch = fold(made, [message(runtime, EVENTS, "o-1", 2, OrderConfirmed(5), 1)])
    finally:
        for store in made.stores.values():
            store.close()
    rekeyed = [(o.key, o.value is None) for o in batch.out if o.topic == made.output]
    assert rekeyed == [(b"OrderConfirmed", False)]  # the event only: no retraction of OrderPlaced


def test_the_projector_folds_a_retraction_and_publishes_versions_and_position(
    runtime: ContextRuntime, tmp_path: Path
) -> None:
    rekeyed = runtime.topics.repartition("orders-by-status", 1)
    projector: ViewProjector = stage(ViewProjector, runtime, tmp_path / "v", [rekeyed])
    try:
        placed = message(runtime, rekeyed, "c:placed", 1, OrderPlaced("c", "EUR"), 0)
        fold(projector, [placed])
        retraction = Message(
            topic=rekeyed, partition=0, offset=1, key=b"c:placed", value=None,
            headers=[*placed.headers(), (h.AGGREGATE_VERSION, b"2"), (h.RETRACT, b"1")],
        )  # fmt: skip
        batch = fold(projector, [retraction])
        (out,) = batch.out
        assert out.key == b"c:placed" and out.value is None  # its only order left: a tombstone
        assert dict(out.headers)[h.VIEW_POSITION] == b"2"
        stored = projector.stores[0].get(DOC_PREFIX + b"c:placed")
        assert stored is not None and decode_document("c:placed", stored).versions == {"o-1": 2}
        first = fold(projector, [message(runtime, rekeyed, "c:placed", 3, OrderPlaced("c", "EUR"), 2)])
        published = runtime.codec.decode(first.out[0].value).message
        assert published.versions == {"o-1": 3} and json.loads(published.state)["count"] == 1
    finally:
        for store in projector.stores.values():
            store.close()
