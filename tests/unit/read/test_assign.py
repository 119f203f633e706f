"""A stage's partition assignment, without Kafka: a partition new to this worker is restored
before the query API sees it as held, so a request meanwhile is told to retry, never given a
false 404 from a half-filled store."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition

from streams.config import Settings
from streams.contexts.orders import VIEWS
from streams.contexts.orders import context as orders
from streams.kafka.runtime import ContextRuntime
from streams.kafka.store import PartitionStore
from streams.read.documents import DocumentCache, ViewDocuments
from streams.read.projector import ViewProjector
from streams.read.stage import Restored
from streams.read.wakeups import BatchWakeups

SUMMARY = VIEWS[0]


class AssigningConsumer:
    """What `_on_assign` asks of the consumer: where to start and a commit of that."""

    def __init__(self) -> None:
        self.assigned: list[TopicPartition] = []

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = partitions

    def commit(self, **_kw: Any) -> None:
        pass


class RestoringProjector(ViewProjector):
    """Records, at each restore, whether the query API already saw the partition as held."""

    held_while_restoring: list[tuple[bool, set[int]]]

    def restore(self, partition: int, store: PartitionStore) -> Restored | None:
        self.held_while_restoring.append((self.documents.holds(partition), set(self.arriving)))
        store.write({b"d:o-1": b"{}"}, {self.inputs[0]: 7})
        return Restored(self.output, 1, 1, 7)


def test_a_partition_is_held_only_once_restored(tmp_path: Path) -> None:
    runtime = ContextRuntime.offline(orders, prefix="t.")
    settings = replace(Settings(), data_dir=str(tmp_path), view_restore=True)
    stage = RestoringProjector(
        settings,
        runtime,
        SUMMARY,
        1,
        group_id="g",
        inputs=["t.orders.events"],
        data_dir=tmp_path,
        client_id="c",
    )
    stage.held_while_restoring = []
    consumer = AssigningConsumer()
    try:
        stage._on_assign(consumer, [TopicPartition("t.orders.events", 2)])  # type: ignore[arg-type]
        assert stage.held_while_restoring == [(False, {2})]  # not held, but known to be arriving
        assert stage.documents.holds(2) and stage.arriving == set()
        assert [(tp.partition, tp.offset) for tp in consumer.assigned] == [(2, 7)]
        # assigned again while still held (no revoke in between): the same store, no restore
        stage._on_assign(consumer, [TopicPartition("t.orders.events", 2)])  # type: ignore[arg-type]
        assert stage.held_while_restoring == [(False, {2})]
    finally:
        for store in stage.stores.values():
            store.close()


class ArrivingStores:
    """A stage with partition 1 being restored and nothing held yet."""

    stores: dict[int, PartitionStore] = {}
    arriving = {1}

    def store(self, partition: int) -> PartitionStore | None:
        return None


def test_a_request_waits_for_a_partition_being_restored_not_for_others() -> None:
    source = ArrivingStores()
    documents = ViewDocuments(source, "in", BatchWakeups(), DocumentCache(0))

    async def scenario() -> tuple[float, float, float]:
        started = time.monotonic()
        await documents.arrival(0, 5.0)  # not arriving: at once
        other = time.monotonic() - started
        asyncio.get_running_loop().call_later(0.2, source.arriving.clear)
        started = time.monotonic()
        await documents.arrival(1, 5.0)  # waits until the restore is done
        waited = time.monotonic() - started
        source.arriving.add(1)
        started = time.monotonic()
        await documents.arrival(1, 0.1)  # never done: gives up at the request's timeout
        return other, waited, time.monotonic() - started

    other, waited, gave_up = asyncio.run(scenario())
    assert other < 0.05 and 0.15 < waited < 2.0 and 0.08 < gave_up < 1.0
