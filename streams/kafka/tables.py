"""A changelog-backed RocksDB table: one store per owned partition, mirrored by a compacted
changelog topic, with a bounded cache of decoded values in front of it.

Opening a partition restores its store from its checkpoint (the changelog offset it reflects) to
the end of the changelog; writes reach a store only after the transaction that carried them to
the changelog committed (`apply`, with the offset they reach), so a store is never ahead of its
log. The table knows nothing of its keys: its owner hands it how a changelog record becomes
store writes (`RecordWrites`; by default the record itself) and what its cache holds. The write
side's committed state (`streams.write.state`) and a window stage's state
(`streams.windows.state`) are both such tables.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from streams import metrics
from streams.config import Settings
from streams.kafka.readers import PartitionReader
from streams.kafka.store import PartitionStore

log = logging.getLogger(__name__)

Writes = dict[bytes, bytes | None]
"""Store (and changelog) writes of one partition; None deletes."""
Lookup = Callable[[bytes], bytes | None]
"""A store's current value of a key, as a restore left it so far."""


class RecordWrites(Protocol):
    """What one changelog record (written at `at_ms`, with `headers`) becomes in a store whose
    current values `stored` gives."""

    def __call__(
        self, key: bytes, value: bytes | None, at_ms: int, headers: Any, stored: Lookup
    ) -> list[tuple[bytes, bytes | None]]: ...


def as_written(
    key: bytes, value: bytes | None, at_ms: int, headers: Any, stored: Lookup
) -> list[tuple[bytes, bytes | None]]:
    """A changelog record is the store write itself (a table whose store mirrors its changelog)."""
    return [(key, value)]


_RESTORE_BATCH = 10000


class _Pending:
    """A store's value of a key as a restore left it so far (its pending writes first)."""

    def __init__(self, store: PartitionStore, writes: Writes) -> None:
        self.store = store
        self.writes = writes

    def __call__(self, key: bytes) -> bytes | None:
        return self.writes[key] if key in self.writes else self.store.get(key)


def restore(
    settings: Settings,
    store: PartitionStore,
    topic: str,
    partition: int,
    record_writes: RecordWrites = as_written,
) -> None:
    """Bring a partition's store up to the end of its changelog, from the store's checkpoint
    (timed in `streams_restore_seconds`, its records counted in `streams_restored_records_total`)."""
    started = time.monotonic()
    with PartitionReader(settings, topic, partition, store.position(topic)) as reader:
        if reader.start >= reader.stop:
            return
        restored = metrics.RESTORED_RECORDS.labels(topic, str(partition))
        writes: Writes = {}
        pending = _Pending(store, writes)
        for batch in reader.batches(_RESTORE_BATCH):
            restored.inc(len(batch))
            for msg in batch:
                key, value, at = msg.key() or b"", msg.value(), msg.timestamp()[1]
                writes.update(record_writes(key, value, at, msg.headers(), pending))
            if len(writes) >= _RESTORE_BATCH:
                store.write(writes, {topic: reader.position})
                writes = {}
                pending = _Pending(store, writes)
        # the last committed offset may be a transaction marker: resume after it next time
        store.write(writes, {topic: reader.position})
        metrics.RESTORE_SECONDS.labels(topic).observe(time.monotonic() - started)
        log.info("%s[%d] restored from offset %d to %d", topic, partition, reader.start, reader.position)


DECODED_PER_STORED_BYTE = 6
"""A value decoded from JSON takes about six times its stored bytes in Python objects (dicts,
strings, floats): measured with tracemalloc on an orders summary (5.9x) and a telemetry window
(5.1x)."""
ENTRY_OVERHEAD = 300
"""A cache's own dict slot, key and tuple for one value, in bytes."""


def memory_cost(stored_size: int) -> int:
    """The memory one cached value decoded from `stored_size` bytes of JSON is counted for: its
    decoded estimate plus the cache's entry."""
    return stored_size * DECODED_PER_STORED_BYTE + ENTRY_OVERHEAD


V = TypeVar("V")
MISSING: Any = object()
"""What `TableCache.get` answers for a key it does not hold (None may be a cached value)."""


class TableCache(Generic[V]):
    """Decoded committed values by (partition, key), bounded in entries and in bytes (sizes are
    the owner's estimate; 0 counts entries only). The one least recently written leaves first;
    past a bound, `slack` more entries leave with it, so that eviction is not paid per write."""

    def __init__(self, entries: int, max_bytes: int | None = None, slack: int = 0) -> None:
        self.entries = entries
        self.max_bytes = max_bytes
        self.slack = slack
        self.bytes = 0
        self._values: OrderedDict[tuple[int, bytes], tuple[V, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def get(self, partition: int, key: bytes) -> V:
        """The cached value, or `MISSING`."""
        found = self._values.get((partition, key))
        return MISSING if found is None else found[0]

    def put(self, partition: int, key: bytes, value: V, size: int = 0) -> None:
        """Remember a committed value (as the newest), then keep to the bounds."""
        values = self._values
        old = values.pop((partition, key), None)
        if old is not None:
            self.bytes -= old[1]
        values[(partition, key)] = (value, size)
        self.bytes += size
        if len(values) > self.entries or (self.max_bytes is not None and self.bytes > self.max_bytes):
            self._evict()

    def discard(self, partition: int, key: bytes) -> None:
        """Forget one key."""
        old = self._values.pop((partition, key), None)
        if old is not None:
            self.bytes -= old[1]

    def forget(self, partitions: Iterable[int]) -> None:
        """Forget every key of `partitions`."""
        gone = set(partitions)
        for key in [k for k in self._values if k[0] in gone]:
            self.bytes -= self._values.pop(key)[1]

    def clear(self) -> None:
        """Forget everything."""
        self._values.clear()
        self.bytes = 0

    def _evict(self) -> None:
        values = self._values
        if len(values) > self.entries and self.slack:
            for key in list(itertools.islice(values, len(values) - self.entries + self.slack)):
                self.bytes -= values.pop(key)[1]
        while values and (
            len(values) > self.entries or (self.max_bytes is not None and self.bytes > self.max_bytes)
        ):
            self.bytes -= values.popitem(last=False)[1][1]


Stale = Callable[[PartitionStore], str | None]
"""Why a store must be restored from the start of its changelog again (None: it need not)."""


class ChangelogTable(Generic[V]):
    """The committed state of a changelog-backed table on one worker: a RocksDB store per owned
    partition (`<data_dir>/p<partition>`) and a bounded cache of decoded values."""

    def __init__(
        self,
        settings: Settings,
        changelog: str,
        data_dir: Path,
        cache: TableCache[V],
        record_writes: RecordWrites = as_written,
        stale: Stale | None = None,
    ) -> None:
        self.settings = settings
        self.changelog = changelog
        self.data_dir = data_dir
        self.cache = cache
        self.record_writes = record_writes
        self.stale = stale
        self.stores: dict[int, PartitionStore] = {}

    def __contains__(self, partition: object) -> bool:
        return partition in self.stores

    def owned(self) -> list[int]:
        """The partitions this worker holds state for."""
        return sorted(self.stores)

    def open(self, partition: int) -> PartitionStore:
        """Open a partition's store and restore it from the changelog past its checkpoint."""
        path = self.data_dir / f"p{partition}"
        store = PartitionStore(path, self.settings.rocksdb_statistics_on)
        why = None if self.stale is None else self.stale(store)
        if why is not None:
            log.info("%s[%d]: %s; restoring it again", self.changelog, partition, why)
            store.destroy()
            store = PartitionStore(path, self.settings.rocksdb_statistics_on)
        try:
            restore(self.settings, store, self.changelog, partition, self.record_writes)
        except BaseException:
            store.close()
            raise
        self.stores[partition] = store
        return store

    def close(self, partitions: Iterable[int]) -> None:
        """Close the stores of partitions given up, and forget what is cached of them."""
        gone = set(partitions)
        self.cache.forget(gone)
        for partition in gone:
            store = self.stores.pop(partition, None)
            if store is not None:
                store.close()

    def close_all(self) -> None:
        """Close every store and empty the cache."""
        self.close(list(self.stores))
        self.cache.clear()

    def get(self, partition: int, key: bytes) -> bytes | None:
        """A committed value, from RocksDB."""
        return self.stores[partition].get(key)

    def apply(self, writes: Mapping[int, Writes], changelog_end: Mapping[int, int]) -> list[int]:
        """A committed batch's changelog records into the stores of the partitions still owned,
        with the changelog offset they reach; returns the partitions written."""
        written = []
        for partition, partition_writes in writes.items():
            store = self.stores.get(partition)
            if store is not None and partition in changelog_end:
                store.write(partition_writes, {self.changelog: changelog_end[partition]})
                written.append(partition)
        return written
