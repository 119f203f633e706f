"""`python -m bench.prefetch`: what a lagging group member holds in memory, by fetch size.

A stage that falls behind leaves its member's queue full: librdkafka stops fetching at
`queued.min.messages` records or `queued.max.messages.kbytes` of payload, but a fetch lands whole,
up to `max.partition.fetch.bytes` of compressed records per partition. Over small lz4-compressed
records (telemetry readings) that is tens of thousands of records per partition, each costing
some 400 bytes of C heap besides its payload. This produces `PREFETCH_RECORDS` (200,000) readings
over 4 partitions, then for each fetch size runs a group member with the worker's prefetch bounds
(`streams.kafka.clients.prefetch_bounds`, the fetch size overridden) in a process of its own,
taking 2,000 records every 0.4 s (about what the window stage took in `make soak`) for
`PREFETCH_SECONDS` (20), and records the most records its queue held (`fetchq_cnt`), the payload
bytes then counted (`fetchq_size`) and the growth of the C heap in use. Writes
bench/results/prefetch-<time>.json with the provenance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.provenance import provenance, write_result
from streams.allocator import heap_usage
from streams.config import Settings
from streams.kafka import clients

PARTITIONS = 4
FETCH_SIZES = (1024 * 1024, 256 * 1024, 64 * 1024)
"""librdkafka's default, and two smaller ones (the worker's default is the last)."""


def produce_readings(settings: Settings, topic: str, count: int) -> None:
    """`count` small JSON readings over the topic's partitions, compressed as the project's producers do."""
    admin = AdminClient(clients.connection(settings))  # kept alive until the topic exists
    admin.create_topics([NewTopic(topic, PARTITIONS, -1)])[topic].result()
    producer = clients.producer(settings)
    for i in range(count):
        value = {
            "device_id": f"dev-{i % 1000}",
            "metric": "temperature",
            "value": 20 + i % 7,
            "at": 1796000000000 + i,
        }
        producer.produce(
            topic, json.dumps(value).encode(), f"dev-{i % 1000}".encode(), partition=i % PARTITIONS
        )
        if i % 20_000 == 0:
            producer.poll(0)
    producer.flush(60)


def measure_one(topic: str, fetch_bytes: int, seconds: float) -> dict[str, Any]:
    """One lagging member, in this process: its queue's peak and the C heap's growth."""
    settings = Settings()
    seen: dict[str, int] = {"records": 0, "bytes": 0}

    def on_stats(raw: str) -> None:
        parts = [
            p for t in json.loads(raw)["topics"].values() for k, p in t["partitions"].items() if k != "-1"
        ]
        records = max((int(p.get("fetchq_cnt", 0)) for p in parts), default=0)
        if records > seen["records"]:
            seen["records"], seen["bytes"] = records, max(int(p.get("fetchq_size", 0)) for p in parts)

    consumer = Consumer({
        **clients.connection(settings), "group.id": f"prefetch-{uuid.uuid4().hex[:8]}",
        "isolation.level": "read_committed", "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 20, **clients.prefetch_bounds(settings),
        "max.partition.fetch.bytes": fetch_bytes, "statistics.interval.ms": 500, "stats_cb": on_stats,
    })  # fmt: skip
    before = heap_usage()
    consumer.subscribe([topic])
    taken, peak_heap, started = 0, 0, time.monotonic()
    while time.monotonic() - started < seconds:
        taken += len(clients.take(consumer, 2000, 1.0))
        time.sleep(0.4)
        now = heap_usage()
        if before is not None and now is not None:
            peak_heap = max(peak_heap, now.in_use - before.in_use)
    consumer.close()
    return {
        "max_partition_fetch_bytes": fetch_bytes,
        "records_taken": taken,
        "queue_records_peak": seen["records"],
        "queue_payload_bytes_at_peak": seen["bytes"],
        "c_heap_growth_mib_peak": round(peak_heap / 2**20, 1),
    }


def main() -> None:
    """Produce once, measure each fetch size in a process of its own, write the JSON under `PREFETCH_OUT`."""
    if len(sys.argv) == 3:
        print(
            json.dumps(
                measure_one(sys.argv[1], int(sys.argv[2]), float(os.environ.get("PREFETCH_SECONDS", "20")))
            )
        )
        return
    started = provenance()
    settings = Settings()
    records = int(os.environ.get("PREFETCH_RECORDS", "200000"))
    topic = f"prefetch-{uuid.uuid4().hex[:8]}"
    produce_readings(settings, topic, records)
    runs = []
    for size in FETCH_SIZES:
        done = subprocess.run([sys.executable, "-m", "bench.prefetch", topic, str(size)],
                              capture_output=True, text=True, check=True)  # fmt: skip
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(runs[-1], flush=True)
    admin = AdminClient(clients.connection(settings))
    admin.delete_topics([topic])[topic].result()
    result = {
        "provenance_at_start": started,
        "records": records,
        "partitions": PARTITIONS,
        "queued_min_messages": settings.consumer_queue_records,
        "queued_max_messages_kbytes": settings.consumer_queue_bytes // 1024,
        "runs": runs,
    }
    write_result("prefetch", result, "PREFETCH_OUT")


if __name__ == "__main__":
    main()
