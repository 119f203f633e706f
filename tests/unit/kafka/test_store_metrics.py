"""RocksDB's signals in /metrics: the size of the open stores and their block cache's hits and
misses (from RocksDB's statistics), which keep counting after a store is closed."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from streams import metrics
from streams.kafka.store import PartitionStore, cache_counts


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_cache_counts_are_read_from_rocksdb_statistics_text() -> None:
    text = (
        "rocksdb.block.cache.miss COUNT : 801\n"
        "rocksdb.block.cache.hit COUNT : 2057\n"
        "rocksdb.sim.block.cache.hit COUNT : 9\n"
    )
    assert cache_counts(text) == (2057, 801)
    assert cache_counts("") == (0, 0)


def test_store_size_and_cache_hits_reach_the_metrics(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    store.write({b"k%d" % n: b"v" * 100 for n in range(5000)}, {"t": 5000})
    store.compact()  # SST files, read back through the block cache
    for n in range(0, 5000, 3):
        assert store.get(b"k%d" % n) == b"v" * 100
    metrics.render()
    assert sample("streams_rocksdb_stores") >= 1
    assert sample("streams_rocksdb_sst_bytes") > 0
    hits, misses = (
        sample("streams_rocksdb_block_cache_hits_total"),
        sample("streams_rocksdb_block_cache_misses_total"),
    )
    assert hits > 0 and misses > 0
    store.close()
    metrics.render()
    assert sample("streams_rocksdb_block_cache_hits_total") >= hits  # a counter never goes down
