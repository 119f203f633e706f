"""The write side's committed state on one worker: a RocksDB store per owned partition, mirrored
by the changelog, with an LRU cache of recently used aggregates in front of it."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from streams.config import Settings
from streams.core.commands import Aggregate, CommandResult
from streams.kafka.store import PartitionStore
from streams.wire.codec import AvroCodec
from streams.wire.state import StateFormat
from streams.write.changelog import AGGREGATE_PREFIX, COMMAND_PREFIX, decode_aggregate, restore

log = logging.getLogger(__name__)


class CommittedState:
    """What the changelog holds for this worker's partitions (a `StateReader` for the intake).

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
    ) -> None:
        self.settings = settings
        self.codec = codec
        self.states = states
        self.changelog = changelog
        self.data_dir = data_dir
        self.stores: dict[int, PartitionStore] = {}
        # committed aggregates recently used, so hot ones skip RocksDB and Avro decoding
        self._cache: OrderedDict[tuple[int, bytes], Aggregate[Any]] = OrderedDict()
        self.cache_size = cache_size

    def __contains__(self, partition: object) -> bool:
        return partition in self.stores

    def owned(self) -> list[int]:
        """The partitions this worker holds state for."""
        return sorted(self.stores)

    def open(self, partition: int) -> None:
        """Open a partition's store and restore it from the changelog past its checkpoint."""
        store = PartitionStore(self.data_dir / f"p{partition}")
        try:
            restore(self.settings, store, self.changelog, partition)
        except BaseException:
            store.close()
            raise
        self.stores[partition] = store

    def close(self, partitions: Iterable[int]) -> None:
        """Close the stores of partitions given up, and forget their cached aggregates."""
        gone = set(partitions)
        for key in [k for k in self._cache if k[0] in gone]:
            del self._cache[key]
        for partition in gone:
            store = self.stores.pop(partition, None)
            if store is not None:
                store.close()

    def close_all(self) -> None:
        """Close every store."""
        self.close(list(self.stores))
        self._cache.clear()

    def aggregate(self, partition: int, key: bytes) -> Aggregate[Any] | None:
        """The committed aggregate (cache, then RocksDB)."""
        cached = self._cache.get((partition, key))
        if cached is not None:
            return cached
        stored = self.stores[partition].get(AGGREGATE_PREFIX + key)
        return None if stored is None else decode_aggregate(self.states, stored)

    def command_result(self, partition: int, command_id: bytes) -> CommandResult | None:
        """The first result of a command id, when it was remembered."""
        stored = self.stores[partition].get(COMMAND_PREFIX + command_id)
        return None if stored is None else self.codec.decode(stored).message

    def apply(
        self,
        writes: dict[int, dict[bytes, bytes]],
        changelog_end: dict[int, int],
        aggregates: dict[int, dict[bytes, Aggregate[Any]]],
    ) -> None:
        """A committed batch: its changelog records into the stores (with the offset they reach)
        and its aggregates into the cache."""
        for partition, partition_writes in writes.items():
            store = self.stores.get(partition)
            if store is not None and partition in changelog_end:
                store.write(partition_writes, {self.changelog: changelog_end[partition]})
        cache = self._cache
        for partition, changed in aggregates.items():
            for key, aggregate in changed.items():
                cache[(partition, key)] = aggregate
                cache.move_to_end((partition, key))
        while len(cache) > self.cache_size:
            cache.popitem(last=False)
