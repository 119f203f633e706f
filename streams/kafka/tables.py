"""Restoring a changelog-backed RocksDB table: a partition's store brought up to the end of its
changelog, from the store's checkpoint."""

from __future__ import annotations

import logging

from streams.config import Settings
from streams.kafka.readers import PartitionReader
from streams.kafka.store import PartitionStore
from streams.wire.changelog import record_writes

log = logging.getLogger(__name__)

_RESTORE_BATCH = 10000


class _Pending:
    """A store's value of a key as a restore left it so far (its pending writes first)."""

    def __init__(self, store: PartitionStore, writes: dict[bytes, bytes | None]) -> None:
        self.store = store
        self.writes = writes

    def __call__(self, key: bytes) -> bytes | None:
        return self.writes[key] if key in self.writes else self.store.get(key)


def restore(settings: Settings, store: PartitionStore, topic: str, partition: int) -> None:
    """Bring a partition's store up to the end of its changelog, from the store's checkpoint."""
    with PartitionReader(settings, topic, partition, store.position(topic)) as reader:
        if reader.start >= reader.stop:
            return
        writes: dict[bytes, bytes | None] = {}
        pending = _Pending(store, writes)
        for batch in reader.batches(_RESTORE_BATCH):
            for msg in batch:
                key, value, at = msg.key() or b"", msg.value(), msg.timestamp()[1]
                writes.update(record_writes(key, value, at, msg.headers(), pending))
            if len(writes) >= _RESTORE_BATCH:
                store.write(writes, {topic: reader.position})
                writes = {}
                pending = _Pending(store, writes)
        # the last committed offset may be a transaction marker: resume after it next time
        store.write(writes, {topic: reader.position})
        log.info("%s[%d] restored from offset %d to %d", topic, partition, reader.start, reader.position)
