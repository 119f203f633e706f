"""The soak's reading of the worker's /metrics: memory gauges, caches and the lag of each stage."""

from __future__ import annotations

from bench.soak import parse_gauges

METRICS = """# HELP streams_consumer_lag_records Records between ...
# TYPE streams_consumer_lag_records gauge
streams_consumer_lag_records{group="s.orders.handler",topic="s.orders.commands",partition="0"} 10.0
streams_consumer_lag_records{group="s.orders.handler",topic="s.orders.commands",partition="1"} 5.0
streams_consumer_lag_records{group="s.dev.windows",topic="s.dev.raw",partition="0"} 7.0
streams_idempotency_ids{context="orders"} 100.0
streams_idempotency_ids{context="devices"} 50.0
streams_write_cache_bytes{context="orders"} 1000.0
streams_rocksdb_block_cache_bytes 2000.0
streams_consumer_fetch_queue_bytes{group="s.orders.handler"} 300.0
streams_consumer_fetch_queue_bytes{group="s.dev.windows"} 200.0
streams_malloc_bytes{kind="in_use"} 4096.0
streams_rocksdb_table_readers_bytes 640.0
streams_rocksdb_live_versions 12.0
"""


def test_the_lag_is_summed_per_stage_and_the_gauges_are_read() -> None:
    figures = parse_gauges(METRICS)
    assert figures["lag"] == {"s.orders.handler": 15, "s.dev.windows": 7}
    assert figures["idempotency_ids"] == 150
    assert figures["caches_bytes"] == 3000
    assert figures["caches"] == {"write_cache": 1000, "rocksdb_block_cache": 2000}
    assert figures["fetch_queues"] == 500
    assert figures["malloc_in_use"] == 4096
    assert figures["rocksdb_table_readers"] == 640
    assert figures["rocksdb_live_versions"] == 12
