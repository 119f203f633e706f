"""RocksDB's signals in /metrics: the size of the open stores and their block cache's hits and
misses (from RocksDB's statistics), which keep counting after a store is closed."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from streams import metrics
from streams.kafka.store import PartitionStore, cache_counts
from tests.integration.workers import wait_until


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
    assert sample("streams_rocksdb_sst_files") >= 1
    assert sample("streams_rocksdb_table_readers_bytes") > 0
    assert sample("streams_rocksdb_live_versions") >= 1
    hits, misses = (
        sample("streams_rocksdb_block_cache_hits_total"),
        sample("streams_rocksdb_block_cache_misses_total"),
    )
    assert hits > 0 and misses > 0
    store.close()
    metrics.render()
    assert sample("streams_rocksdb_block_cache_hits_total") >= hits  # a counter never goes down


def test_an_open_iterator_keeps_a_second_version_alive(tmp_path: Path) -> None:
    """`streams_rocksdb_live_versions` shows what pins old files (an iterator left open)."""
    store = PartitionStore(tmp_path / "p0")
    store.write({b"a": b"1", b"b": b"2"}, {"t": 2})
    store.compact()
    assert store.memory().live_versions == 1
    scan = store.scan(b"")
    next(scan)  # the iterator now holds the current version
    store.write({b"c": b"3"}, {"t": 3})
    store.compact()
    assert store.memory().live_versions >= 2
    scan.close()
    assert store.memory().live_versions == 1
    store.close()


ROUNDS = 40


def test_the_block_cache_keeps_to_its_capacity_with_the_memtables_charged_to_half(tmp_path: Path) -> None:
    """A steady writer over many stores, then reads: the memtables' placeholders take at most
    half of the shared cache, and the cache holds no more than its capacity (with a budget as
    large as the cache, the placeholders left data blocks no room and it went past capacity)."""
    from streams.kafka import store as module

    capacity = 32 * 1024 * 1024
    module.size_block_cache(capacity)
    stores = [PartitionStore(tmp_path / f"p{n}") for n in range(8)]
    try:
        assert module._WRITE_BUFFERS.get_buffer_size() == capacity // 2
        for round_ in range(ROUNDS):
            for n, store in enumerate(stores):
                store.write({b"k%d-%d-%d" % (n, round_, i): b"v" * 200 for i in range(1000)}, {"t": round_})
            # the budget is checked at each write; the flushes it asks for run in the background
            wait_until(lambda: not any(_flushing(store) for store in stores), "the flushes", 30, every=0.01)
            assert module._WRITE_BUFFERS.get_usage() <= capacity // 2 + 1024 * 1024
        for n, store in enumerate(stores):
            for i in range(0, 1000, 3):
                assert store.get(b"k%d-%d-%d" % (n, i % ROUNDS, i)) == b"v" * 200
        assert module._BLOCK_CACHE.get_usage() <= capacity * 1.05
    finally:
        for store in stores:
            store.close()
        module.size_block_cache(module.BLOCK_CACHE_BYTES)


def _flushing(store: PartitionStore) -> bool:
    value = store._db.property_int_value
    return bool(value("rocksdb.mem-table-flush-pending") or value("rocksdb.num-running-flushes"))
