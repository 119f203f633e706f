"""The history index: per aggregate, (version) -> offset and time in `<ctx>.events`, and
(snapshot version) -> offset in `<ctx>.snapshots`. Kafka has no key index; this is ours.

Keys are `<prefix><length of the id: 4 bytes><id><version: 8 bytes>`: the length prefix keeps
the aggregates apart whatever bytes their ids hold (with a separator instead, the id `a\x00…`
would fall inside the range of `a`). Stores written in the old format are rebuilt from the log.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

from confluent_kafka import Message

from streams import metrics
from streams.core.clock import iso_to_ms
from streams.kafka.store import PartitionStore
from streams.read.stage import Batch, Stage
from streams.wire import headers as h
from streams.wire.codec import DecodeError
from streams.wire.dlq import dead_letter, source_of

log = logging.getLogger(__name__)

HISTORY_PREFIX = b"h:"
SNAPSHOT_PREFIX = b"s:"
_PAIR = struct.Struct(">qq")
_VERSION = struct.Struct(">q")
_LENGTH = struct.Struct(">I")
_LAST_VERSION = 2**63 - 1
_INDEX_HEADERS = frozenset({h.AGGREGATE_VERSION, h.OCCURRED_AT})


class NotOwned(Exception):
    """The partition's index is not held by this worker (any more): ask its owner."""


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One event of an aggregate: its version, offset in `<ctx>.events` and time (ms)."""

    version: int
    offset: int
    occurred_at: int


def aggregate_prefix(aggregate_id: str | bytes, prefix: bytes = HISTORY_PREFIX) -> bytes:
    """The key prefix of every entry of one aggregate (and of no other); the id as text or as
    the record key's bytes."""
    encoded = aggregate_id.encode() if isinstance(aggregate_id, str) else aggregate_id
    return prefix + _LENGTH.pack(len(encoded)) + encoded


def history_key(aggregate_id: str | bytes, version: int, prefix: bytes = HISTORY_PREFIX) -> bytes:
    """Index key of one aggregate version: sorts by aggregate, then version."""
    return aggregate_prefix(aggregate_id, prefix) + _VERSION.pack(version)


def version_of_key(key: bytes) -> int:
    """The version at the end of a `history_key`."""
    return int(_VERSION.unpack(key[-_VERSION.size :])[0])


class HistoryIndexer(Stage):
    """Indexes `<ctx>.events` and `<ctx>.snapshots` by aggregate and version."""

    label = "history"
    store_format = b"2"  # 1: ids ended by a NUL byte

    def handle(self, msg: Message, batch: Batch) -> None:
        partition = msg.partition()
        aggregate_id = msg.key() or b""
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
            detail = f"no integer {h.AGGREGATE_VERSION} header: the event cannot be indexed"
            self.reject(msg, batch, "unindexable_event", detail)
            return
        try:
            occurred = iso_to_ms(meta.get(h.OCCURRED_AT) or "1970-01-01T00:00:00Z")
        except ValueError:
            occurred = 0  # indexed by version; `as_of` sees it as of the epoch
        batch.put(partition, history_key(aggregate_id, version), _PAIR.pack(msg.offset(), occurred))

    def reject(self, msg: Message, batch: Batch, reason: str, detail: str) -> None:
        """The context's DLQ, marked as the history index's."""
        source = source_of(msg.topic(), msg.partition(), msg.offset())
        letter = dead_letter(
            key=msg.key(), value=msg.value(), headers=msg.headers(), reason=reason, detail=detail,
            source=source, dlq_stage="history",
        )  # fmt: skip
        batch.dead_letter(self.runtime.topics.dlq, letter)
        metrics.DLQ.labels(self.runtime.context.name, reason).inc()
        log.warning("history index: %s to DLQ: %s (%s)", source, reason, detail)

    def entries(
        self,
        partition: int,
        aggregate_id: str,
        from_version: int = 1,
        limit: int = 1000,
        up_to: int | None = None,
    ) -> list[IndexEntry]:
        """Up to `limit` index entries of the aggregate from `from_version` (to `up_to`), by
        version: one page, read from its first key (blocking; NotOwned: not held here)."""
        store = self._store(partition)
        out: list[IndexEntry] = []
        start = history_key(aggregate_id, max(from_version, 0))
        for key, value in store.scan(aggregate_prefix(aggregate_id), start):
            version = version_of_key(key)
            if len(out) >= limit or (up_to is not None and version > up_to):
                break
            out.append(IndexEntry(version, *_PAIR.unpack(value)))
        return out

    def latest(self, partition: int, aggregate_id: str) -> IndexEntry | None:
        """The aggregate's last indexed event (None: no such aggregate)."""
        store = self._store(partition)
        found = store.last_before(aggregate_prefix(aggregate_id), history_key(aggregate_id, _LAST_VERSION))
        return None if found is None else IndexEntry(version_of_key(found[0]), *_PAIR.unpack(found[1]))

    def version_as_of(self, partition: int, aggregate_id: str, as_of_ms: int) -> int | None:
        """The last version whose event occurred at or before `as_of_ms` (None: none did).
        Event times are not indexed in order, so this walks the aggregate's entries, holding
        one at a time (blocking)."""
        store = self._store(partition)
        found = None
        for key, value in store.scan(aggregate_prefix(aggregate_id)):
            if _PAIR.unpack(value)[1] <= as_of_ms:
                found = version_of_key(key)
        return found

    def _store(self, partition: int) -> PartitionStore:
        store = self.stores.get(partition)
        if store is None:
            raise NotOwned(partition)
        return store

    def snapshot_at_or_before(
        self, partition: int, aggregate_id: str, version: int
    ) -> tuple[int, int] | None:
        """(snapshot version, snapshots-topic offset) of the latest snapshot <= version."""
        store = self.stores.get(partition)
        if store is None:
            return None
        prefix = aggregate_prefix(aggregate_id, SNAPSHOT_PREFIX)
        found = store.last_before(prefix, history_key(aggregate_id, version, SNAPSHOT_PREFIX))
        if found is None:
            return None
        return version_of_key(found[0]), int(_VERSION.unpack(found[1])[0])
