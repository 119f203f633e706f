"""A worker started on a changelog written by an older worker (aggregates as version + Avro)
restores from it by itself and writes the newer format from then on: nothing lost, no step."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from streams.client import CommandClient
from streams.contexts.orders import AddItem, OrderLine, OrderState, PlaceOrder
from streams.contexts.orders import context as orders
from streams.core.commands import Aggregate
from streams.kafka.fold import aggregate_from_changelog
from streams.kafka.readers import read_partition
from streams.kafka.runtime import ContextRuntime
from streams.wire.changelog import AGGREGATE_PREFIX
from streams.wire.state import ROWS
from streams.wire.topics import partition_for
from tests.conftest import StackEndpoints
from tests.integration.kafka_config import kafka_config
from tests.integration.workers import Deployment

pytestmark = pytest.mark.integration


def test_an_old_format_changelog_is_restored_and_continued(stack: StackEndpoints, tmp_path: Path) -> None:
    dep = Deployment(prefix=f"fmt{uuid.uuid4().hex[:8]}", data_dir=tmp_path)
    settings = dep.settings()
    dep.start("w1")
    dep.wait_healthy("w1")
    try:
        with CommandClient(settings, "orders") as client:
            assert client.execute("o-1", PlaceOrder("c-1", "EUR"), timeout=120).accepted
        dep.kill("w1")
        # what an older worker left: the aggregate at version 1 in the older format, holding a
        # line no event of this log has (so the state can only have come from this record)
        runtime = ContextRuntime.connect(settings, orders)
        legacy = OrderState("placed", "c-1", "EUR", (OrderLine("legacy-sku", 5, 70),))
        producer = Producer(kafka_config(settings.bootstrap))
        producer.produce(
            runtime.topics.changelog,
            runtime.states.encode_avro(Aggregate(1, legacy)),
            AGGREGATE_PREFIX + b"o-1",
            partition=partition_for(b"o-1", settings.partitions),
        )
        assert producer.flush(30) == 0
        shutil.rmtree(tmp_path / "w1")  # a new host: the state comes from the changelog alone
        dep.start("w1")
        dep.wait_healthy("w1")
        with CommandClient(settings, "orders") as client:
            result = client.execute("o-1", AddItem("sku-2", 1, 100), timeout=120)
        assert result.accepted and result.aggregate_version == 2, result
        stored = aggregate_from_changelog(settings, runtime, "o-1")
        assert stored is not None and stored.version == 2
        assert [line.sku for line in stored.state.lines] == ["legacy-sku", "sku-2"]
        raw = [
            m.value()
            for m in read_partition(
                settings, runtime.topics.changelog, partition_for(b"o-1", settings.partitions)
            )
            if m.key() == AGGREGATE_PREFIX + b"o-1"
        ]
        assert [v[:1] for v in raw] == [ROWS, b"\x00", ROWS]  # rows, the older worker's, rows again
    finally:
        dep.stop_all()
