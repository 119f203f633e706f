"""RocksDB (rocksdict) state of one partition, with the input offsets it reflects.

The write side keeps aggregates and seen command ids here, mirrored by its changelog topic; the
read-side stages keep documents and indexes. Writes land together with the new positions in one
atomic write, only after the Kafka output that carried them was committed or acknowledged, so a
store is at most behind its inputs, never ahead: it catches up by reading from its positions.
"""

from __future__ import annotations

import re
import shutil
import struct
import threading
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import astuple, dataclass
from pathlib import Path

from rocksdict import BlockBasedOptions, Cache, Options, Rdict, WriteBatch, WriteBufferManager

from streams import metrics

_POSITION = b"\x00pos:"
_FORMAT = b"\x00format"
LEGACY_FORMAT = b"1"
"""The format of a store written before stores recorded theirs."""
_OFFSET = struct.Struct(">q")

# Memory is bounded per process, whatever the number of keys: every store shares one block cache
# and one write-buffer budget (RocksDB's defaults are per store and grow with each partition).
# The memtables are charged to the cache as placeholders the cache cannot evict, so their budget
# is half of it: with a budget as large as the cache, data blocks had no room left and the cache
# held more than its capacity (placeholders fill some of its 64 shards past their share while
# blocks fill the others), growing for the whole of a 20-minute soak.
BLOCK_CACHE_BYTES = 64 * 1024 * 1024
"""The default size of the shared block cache (`STREAMS_ROCKSDB_BLOCK_CACHE_BYTES`)."""
ARENA_BLOCK_BYTES = 64 * 1024
"""A memtable's unit of allocation. With RocksDB's default (1 MiB for 8 MiB write buffers) a
store that took a few KiB of writes holds a whole MiB: 56 stores (one worker, two contexts) with
40 KB written each held 56 MiB of memtables, against 3.6 MiB with 64 KiB blocks, so the budget
flushed nearly empty memtables."""
_BLOCK_CACHE = Cache(BLOCK_CACHE_BYTES)  # LRU
_WRITE_BUFFERS = WriteBufferManager.new_write_buffer_manager_with_cache(
    BLOCK_CACHE_BYTES // 2, False, _BLOCK_CACHE
)
metrics.ROCKSDB_BLOCK_CACHE_BYTES.set_function(_BLOCK_CACHE.get_usage)
metrics.ROCKSDB_BLOCK_CACHE_PINNED_BYTES.set_function(_BLOCK_CACHE.get_pinned_usage)
metrics.ROCKSDB_WRITE_BUFFER_BYTES.set_function(_WRITE_BUFFERS.get_usage)


def size_block_cache(capacity: int) -> None:
    """Size the block cache every store of the process shares, the memtables' budget (charged to
    it) half of that; call it once at start, before stores fill."""
    _BLOCK_CACHE.set_capacity(capacity)
    _WRITE_BUFFERS.set_buffer_size(capacity // 2)


def _options(statistics: bool) -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    if statistics:  # the block cache's hits and misses (streams_rocksdb_block_cache_*)
        options.enable_statistics()
    options.set_max_open_files(128)
    options.set_write_buffer_size(8 * 1024 * 1024)
    options.set_max_write_buffer_number(2)
    options.set_write_buffer_manager(_WRITE_BUFFERS)
    options.set_arena_block_size(ARENA_BLOCK_BYTES)
    table = BlockBasedOptions()
    table.set_block_cache(_BLOCK_CACHE)
    table.set_cache_index_and_filter_blocks(True)
    # every command looks its id up, and nearly all are new: a Bloom filter answers those misses
    # without reading a data block (10 bits per key, ~1% false positives)
    table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    return options


@dataclass(frozen=True)
class StoreMemory:
    """One store's sizes (RocksDB's properties), summed over the stores into /metrics."""

    sst_bytes: int
    memtable_bytes: int
    """Charged to the shared block cache, as placeholders, by the write-buffer manager."""
    table_readers_bytes: int
    """What the open SST files' readers hold outside the block cache."""
    live_versions: int
    """One per store, more while an iterator or a compaction holds older files."""
    sst_files: int

    @classmethod
    def nothing(cls) -> StoreMemory:
        """The sum of no stores."""
        return cls(0, 0, 0, 0, 0)

    def __add__(self, other: StoreMemory) -> StoreMemory:
        return StoreMemory(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


class PartitionStore:
    """Key/value state of one partition plus the input offsets it reflects (its checkpoint)."""

    def __init__(self, path: Path, statistics: bool = True) -> None:
        """Open (or create) the store at `path`; `statistics`: keep RocksDB's statistics (the
        block cache's hits and misses; `STREAMS_SIGNALS`/`STREAMS_ROCKSDB_STATISTICS`)."""
        path.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._options = _options(statistics)
        self._db = Rdict(str(path), self._options)
        self._closed = False
        _OPEN.add(self)

    def get(self, key: bytes) -> bytes | None:
        """The stored value, or None."""
        value = self._db.get(key)
        return value if value is None else bytes(value)

    def position(self, topic: str) -> int:
        """The next offset of `topic` to read into this store (0 when new)."""
        raw = self._db.get(_POSITION + topic.encode())
        return 0 if raw is None else _OFFSET.unpack(raw)[0]

    def format(self) -> bytes | None:
        """The key format the store was written in (None: an empty store)."""
        found = self._db.get(_FORMAT)
        if found is not None:
            return bytes(found)
        for _ in self._db.keys():  # noqa: SIM118 - an Rdict iterates in raw mode only by keys()
            return LEGACY_FORMAT
        return None

    def set_format(self, version: bytes) -> None:
        """Record the key format of what the store holds."""
        self._db[_FORMAT] = version

    def write(self, writes: Mapping[bytes, bytes | None], positions: Mapping[str, int]) -> None:
        """Put (or delete, for None) keys and advance positions in one atomic write."""
        batch = WriteBatch(raw_mode=True)
        for key, value in writes.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        for topic, offset in positions.items():
            batch.put(_POSITION + topic.encode(), _OFFSET.pack(offset))
        self._db.write(batch)

    def scan(self, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """(key, value) pairs whose key starts with `prefix`, in key order from `start`."""
        for key, value in self._db.items(from_key=start if start is not None else prefix):
            key = bytes(key)
            if not key.startswith(prefix):
                return
            yield key, bytes(value)

    def last_before(self, prefix: bytes, upper: bytes) -> tuple[bytes, bytes] | None:
        """The greatest (key, value) with `prefix` and key <= `upper`, if any."""
        for key, value in self._db.items(from_key=upper, backwards=True):
            key = bytes(key)
            return (key, bytes(value)) if key.startswith(prefix) else None
        return None

    def compact(self) -> None:
        """Flush the memtable and compact every level (to measure the settled size on disk)."""
        self._db.flush(True)
        self._db.compact_range(None, None)

    def disk_bytes(self) -> int:
        """Bytes of every file in the store's directory (SST files, WAL, manifest, options)."""
        return sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())

    def memory(self) -> StoreMemory:
        """What the store holds on disk and in memory outside the shared block cache."""
        value = self._db.property_int_value
        return StoreMemory(
            sst_bytes=value("rocksdb.total-sst-files-size") or 0,
            memtable_bytes=value("rocksdb.size-all-mem-tables") or 0,
            table_readers_bytes=value("rocksdb.estimate-table-readers-mem") or 0,
            live_versions=value("rocksdb.num-live-versions") or 0,
            sst_files=len(self._db.live_files()),
        )

    def cache_counts(self) -> tuple[int, int]:
        """(block cache hits, misses) since the store was opened."""
        return cache_counts(self._options.get_statistics() or "")

    def close(self) -> None:
        """Release the RocksDB handle."""
        with _LOCK:
            if not self._closed:
                _CLOSED.add(self.cache_counts())
                _OPEN.discard(self)
                self._closed = True
        self._db.close()

    def destroy(self) -> None:
        """Close and delete the files."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)


_HIT = re.compile(r"^rocksdb\.block\.cache\.(hit|miss) COUNT : (\d+)$", re.MULTILINE)


def cache_counts(statistics: str) -> tuple[int, int]:
    """(hits, misses) of the block cache in a RocksDB statistics text."""
    found = dict(_HIT.findall(statistics))
    return int(found.get("hit", 0)), int(found.get("miss", 0))


class _Counts:
    """Block cache hits and misses of the stores closed so far (a counter must not go down)."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0

    def add(self, counts: tuple[int, int]) -> None:
        self.hits += counts[0]
        self.misses += counts[1]


_LOCK = threading.Lock()
_OPEN: weakref.WeakSet[PartitionStore] = weakref.WeakSet()
_CLOSED = _Counts()
_REPORTED = _Counts()


def _refresh_metrics() -> None:
    """Size and block cache counts of every store of the process, for a rendering of /metrics."""
    total = StoreMemory.nothing()
    with _LOCK:
        hits, misses = _CLOSED.hits, _CLOSED.misses
        stores = [store for store in _OPEN if not store._closed]
        for store in stores:
            try:
                memory = store.memory()
                store_hits, store_misses = store.cache_counts()
            except Exception:  # closed meanwhile by its stage: counted with the closed ones
                continue
            total += memory
            hits, misses = hits + store_hits, misses + store_misses
        metrics.ROCKSDB_STORES.set(len(stores))
        metrics.ROCKSDB_SST_BYTES.set(total.sst_bytes)
        metrics.ROCKSDB_MEMTABLE_BYTES.set(total.memtable_bytes)
        metrics.ROCKSDB_TABLE_READERS_BYTES.set(total.table_readers_bytes)
        metrics.ROCKSDB_LIVE_VERSIONS.set(total.live_versions)
        metrics.ROCKSDB_SST_FILES.set(total.sst_files)
        if hits > _REPORTED.hits:
            metrics.ROCKSDB_CACHE_HITS.inc(hits - _REPORTED.hits)
            _REPORTED.hits = hits
        if misses > _REPORTED.misses:
            metrics.ROCKSDB_CACHE_MISSES.inc(misses - _REPORTED.misses)
            _REPORTED.misses = misses


metrics.on_render(_refresh_metrics)
