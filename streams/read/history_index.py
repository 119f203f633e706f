"""The history index: per aggregate, (version) -> offset and time in `<ctx>.events`, and
(snapshot version) -> offset in `<ctx>.snapshots`. Kafka has no key index; this is ours."""

from __future__ import annotations

import struct

from confluent_kafka import Message

from streams.core.clock import iso_to_ms
from streams.read.stage import Batch, Stage
from streams.wire import headers as h
from streams.wire.codec import DecodeError

HISTORY_PREFIX = b"h:"
SNAPSHOT_PREFIX = b"s:"
_PAIR = struct.Struct(">qq")
_VERSION = struct.Struct(">q")
_INDEX_HEADERS = frozenset({h.AGGREGATE_VERSION, h.OCCURRED_AT})


def history_key(aggregate_id: str, version: int, prefix: bytes = HISTORY_PREFIX) -> bytes:
    """Index key of one aggregate version: sorts by aggregate, then version."""
    return prefix + aggregate_id.encode() + b"\x00" + _VERSION.pack(version)


def version_of_key(key: bytes) -> int:
    """The version at the end of a `history_key`."""
    return int(_VERSION.unpack(key[-_VERSION.size :])[0])


class HistoryIndexer(Stage):
    """Indexes `<ctx>.events` and `<ctx>.snapshots` by aggregate and version."""

    label = "history"

    def handle(self, msg: Message, batch: Batch) -> None:
        partition = msg.partition()
        aggregate_id = (msg.key() or b"").decode("utf-8", "replace")
        if msg.topic() == self.runtime.topics.snapshots:
            try:
                snapshot = self.runtime.codec.decode(msg.value()).message
            except DecodeError:
                return  # the index only points at what can be read back
            key = history_key(aggregate_id, snapshot.version, SNAPSHOT_PREFIX)
            batch.put(partition, key, _VERSION.pack(msg.offset()))
            return
        meta = h.pick(msg.headers(), _INDEX_HEADERS)
        try:
            version = int(meta[h.AGGREGATE_VERSION])
        except (KeyError, ValueError):
            return
        occurred_at = meta.get(h.OCCURRED_AT, "")
        occurred = iso_to_ms(occurred_at) if occurred_at else 0
        batch.put(partition, history_key(aggregate_id, version), _PAIR.pack(msg.offset(), occurred))

    def lookup(self, partition: int, aggregate_id: str) -> list[tuple[int, int, int]]:
        """(version, offset, occurred_at ms) of every event of the aggregate, by version."""
        store = self.stores.get(partition)
        if store is None:
            return []
        prefix = HISTORY_PREFIX + aggregate_id.encode() + b"\x00"
        return [(version_of_key(k), *_PAIR.unpack(v)) for k, v in store.scan(prefix)]

    def snapshot_at_or_before(
        self, partition: int, aggregate_id: str, version: int
    ) -> tuple[int, int] | None:
        """(snapshot version, snapshots-topic offset) of the latest snapshot <= version."""
        store = self.stores.get(partition)
        if store is None:
            return None
        prefix = SNAPSHOT_PREFIX + aggregate_id.encode() + b"\x00"
        found = store.last_before(prefix, history_key(aggregate_id, version, SNAPSHOT_PREFIX))
        if found is None:
            return None
        return version_of_key(found[0]), int(_VERSION.unpack(found[1])[0])
