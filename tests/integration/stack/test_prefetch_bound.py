"""A group member that falls behind holds a bounded queue of small records (`STREAMS_CONSUMER_FETCH_BYTES`).

librdkafka stops fetching at `queued.min.messages` records, but a fetch lands whole: with its
default of 1 MiB per partition, one fetch of lz4-compressed readings was tens of thousands of
records per partition, each costing some 400 bytes of C heap (bench/results/prefetch-*.json).
"""

from __future__ import annotations

import json
import uuid

import pytest

from bench.prefetch import PARTITIONS, produce_readings
from streams.config import Settings
from streams.kafka import clients
from tests.integration.workers import wait_until

pytestmark = pytest.mark.integration

READINGS = 100_000
"""25,000 per partition: librdkafka's default fetch size would queue nearly all of them."""


@pytest.mark.usefixtures("stack")
def test_a_lagging_member_queues_a_bounded_number_of_small_records() -> None:
    settings = Settings()
    topic = f"prefetch-{uuid.uuid4().hex[:8]}"
    produce_readings(settings, topic, READINGS)
    queued: list[int] = []

    def on_stats(raw: str) -> None:
        parts = [
            p for t in json.loads(raw)["topics"].values() for k, p in t["partitions"].items() if k != "-1"
        ]
        queued.append(max((int(p.get("fetchq_cnt", 0)) for p in parts), default=0))

    consumer = clients.group_consumer(
        settings,
        f"prefetch-{uuid.uuid4().hex[:8]}",
        overrides={"stats_cb": on_stats, "statistics.interval.ms": 200},
    )
    try:
        consumer.subscribe([topic])
        wait_until(lambda: consumer.poll(0.5), "the first record", timeout=60, every=0)
        queued.clear()
        # the stage lags: it takes one record per poll while librdkafka fetches ahead
        wait_until(
            lambda: consumer.poll(0.2) is not None and len(queued) >= 15, "15 statistics reports", every=0
        )
    finally:
        consumer.close()
    peak = max(queued)
    per_fetch = 4_000  # records of 64 KiB of compressed readings, about (the bench saw 15,232 in all)
    assert (
        settings.consumer_queue_records // 2
        <= peak
        <= settings.consumer_queue_records + PARTITIONS * per_fetch
    )
