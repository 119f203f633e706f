"""The write side's committed state on one worker: a RocksDB store per owned partition, mirrored
by the changelog (a `streams.kafka.tables.ChangelogTable`), with a cache of recently used
aggregates in front of it (bounded in bytes, `STREAMS_WRITE_CACHE_BYTES`), and the command ids
of the idempotency window."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from streams import metrics
from streams.config import Settings
from streams.core.commands import Aggregate, CommandResult
from streams.kafka.store import PartitionStore
from streams.kafka.tables import MISSING, ChangelogTable, TableCache
from streams.wire.changelog import (
    AGGREGATE_PREFIX,
    COMMAND_PREFIX,
    EXPIRY_PREFIX,
    ExpiredResults,
    decode_aggregate,
    decode_ids,
    expiry_key,
    record_writes,
    split_expiry_key,
)
from streams.wire.codec import AvroCodec
from streams.wire.state import StateFormat

_ENTRY_OVERHEAD = 240
"""Bytes a cached aggregate takes besides its encoded state (key tuple, dict slot, objects): an
estimate, as the decoded state is larger than its encoding by a factor that depends on it."""


class CommittedState:
    """What the changelog holds for this worker's partitions (a `StateReader` for the intake).

    A changelog-backed table (`streams.kafka.tables`) whose cache holds committed aggregates.
    Writes arrive only after the transaction that carried them committed (`apply`), together
    with the changelog offset they reach, so a store never runs ahead of the log.
    """

    def __init__(
        self,
        settings: Settings,
        codec: AvroCodec,
        states: StateFormat,
        changelog: str,
        data_dir: Path,
        cache_size: int,
        cache_bytes: int | None = None,
        name: str = "",
    ) -> None:
        self.settings = settings
        self.codec = codec
        self.states = states
        self.changelog = changelog
        self.data_dir = data_dir
        # committed aggregates recently used, so hot ones skip RocksDB and Avro decoding
        self.cache: TableCache[Aggregate[Any]] = TableCache(
            cache_size, settings.write_cache_bytes if cache_bytes is None else cache_bytes
        )
        self.table = ChangelogTable(settings, changelog, data_dir, self.cache, record_writes, _stale)
        self.stores = self.table.stores
        self._ids: dict[int, int] = {}
        """Command ids remembered per partition (the idempotency window's contents)."""
        self._scan_from: dict[int, bytes] = {}
        """Per partition, an index key no older one exists before: expiry reads from there rather
        than over the deletion markers of the ids expired before."""
        self._bytes_gauge = metrics.WRITE_CACHE_BYTES.labels(name)
        self._ids_gauge = metrics.IDEMPOTENCY_IDS.labels(name)
        self._forgets = states.forgets()
        """The keyring's evictions when the cache was last known free of forgotten plain values
        (states with personal fields only: `StateFormat.forgets`)."""

    def __contains__(self, partition: object) -> bool:
        return partition in self.table

    def owned(self) -> list[int]:
        """The partitions this worker holds state for."""
        return self.table.owned()

    def open(self, partition: int) -> None:
        """Open a partition's store and restore it from the changelog past its checkpoint."""
        store = self.table.open(partition)
        self._ids[partition] = remembered_ids(store)
        self._ids_gauge.set(sum(self._ids.values()))

    def close(self, partitions: Iterable[int]) -> None:
        """Close the stores of partitions given up, and forget their cached aggregates."""
        gone = set(partitions)
        self.table.close(gone)
        self._bytes_gauge.set(self.cache.bytes)
        for partition in gone:
            self._ids.pop(partition, None)
            self._scan_from.pop(partition, None)

    def close_all(self) -> None:
        """Close every store."""
        self.close(list(self.stores))
        self.table.close_all()
        self._bytes_gauge.set(0)
        self._ids_gauge.set(0)

    def aggregate(self, partition: int, key: bytes) -> Aggregate[Any] | None:
        """The committed aggregate (cache, then RocksDB)."""
        if self.states.sealed and self.states.forgets() != self._forgets:
            self._forget_cached()
        cached = self.cache.get(partition, key)
        if cached is not MISSING:
            return cached
        stored = self.table.get(partition, AGGREGATE_PREFIX + key)
        return None if stored is None else decode_aggregate(self.states, stored)

    def _forget_cached(self) -> None:
        """A subject was forgotten: cached states may hold its plain values, read them again
        from their sealed rows (where they read as the replacement)."""
        self._forgets = self.states.forgets()
        self.cache.clear()
        self._bytes_gauge.set(0)

    def command_result(self, partition: int, command_id: bytes) -> CommandResult | None:
        """The first result of a command id, when it was remembered."""
        stored = self.table.get(partition, COMMAND_PREFIX + command_id)
        return None if stored is None else self.codec.decode(stored).message

    def expired(self, cutoff_ms: int, limit: int) -> list[ExpiredResults]:
        """The results records written before `cutoff_ms` (at most about `limit` ids)."""
        out: list[ExpiredResults] = []
        for partition, store in self.stores.items():
            left = limit - sum(len(e.command_ids) for e in out)
            found = expired_in(store, partition, cutoff_ms, left, self._scan_from.get(partition))
            if found:
                self._scan_from[partition] = expiry_key(found[0].at_ms, found[0].changelog_key)
            out += found
        return out

    def remembered(self) -> int:
        """Command ids this worker remembers (its partitions' idempotency windows)."""
        return sum(self._ids.values())

    def apply(
        self,
        writes: dict[int, dict[bytes, bytes | None]],
        changelog_end: dict[int, int],
        aggregates: dict[int, dict[bytes, Aggregate[Any]]],
    ) -> None:
        """A committed batch: its changelog records into the stores (with the offset they reach)
        and its aggregates into the cache."""
        for partition in self.table.apply(writes, changelog_end):
            partition_writes = writes[partition]
            self._ids[partition] = self._ids.get(partition, 0) + _id_change(partition_writes)
            self._index_written(partition, partition_writes)
        self._ids_gauge.set(sum(self._ids.values()))
        for partition, changed in aggregates.items():
            encoded = writes.get(partition, {})
            for key, aggregate in changed.items():
                size = len(encoded.get(AGGREGATE_PREFIX + key) or b"") + len(key) + _ENTRY_OVERHEAD
                self.cache.put(partition, key, aggregate, size)
        self._bytes_gauge.set(self.cache.bytes)

    def _index_written(self, partition: int, writes: dict[bytes, bytes | None]) -> None:
        """An index key older than where expiry reads from (the clock went back) moves it back."""
        start = self._scan_from.get(partition)
        if start is None:
            return
        for key, value in writes.items():
            if value is not None and key.startswith(EXPIRY_PREFIX) and key < start:
                self._scan_from[partition] = start = key


def _stale(store: PartitionStore) -> str | None:
    """A store of the format before the idempotency index is restored again."""
    return "store without an idempotency index" if unindexed(store) else None


def _id_change(writes: dict[bytes, bytes | None]) -> int:
    """How many command ids a store write remembers (+) or forgets (-), from its index keys."""
    change = 0
    for key, value in writes.items():
        if key.startswith(EXPIRY_PREFIX):
            change += len(decode_ids(value)) if value is not None else 0
        elif key.startswith(COMMAND_PREFIX) and value is None:
            change -= 1
    return change


def expired_in(
    store: PartitionStore, partition: int, cutoff_ms: int, limit: int, start: bytes | None = None
) -> list[ExpiredResults]:
    """The results records of `store` written before `cutoff_ms`, oldest first, at most `limit`
    ids; the index is read from `start` (no index key before it exists)."""
    out: list[ExpiredResults] = []
    taken = 0
    for key, value in store.scan(EXPIRY_PREFIX, start):
        at_ms, changelog_key = split_expiry_key(key)
        if at_ms >= cutoff_ms or taken >= limit:
            break
        ids = tuple(decode_ids(value))
        out.append(ExpiredResults(partition, changelog_key, at_ms, ids))
        taken += len(ids)
    return out


def unindexed(store: PartitionStore) -> bool:
    """A store written before command ids expired: it remembers ids but has no expiry index (it
    is restored from the changelog again, which indexes every results record by its time)."""
    return (
        next(store.scan(COMMAND_PREFIX), None) is not None and next(store.scan(EXPIRY_PREFIX), None) is None
    )


def remembered_ids(store: PartitionStore) -> int:
    """How many command ids `store` remembers (from its index)."""
    return sum(len(decode_ids(value)) for _, value in store.scan(EXPIRY_PREFIX))
