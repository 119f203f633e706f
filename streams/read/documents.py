"""The read side's documents: their storage key and form, the decoded cache, and reading them
for the query API (one document, a store's position, filtered scans over partitions).

The stores are RocksDB (`streams.kafka.store`); nothing above the read side sees a store, a key
prefix or the stored form: the web side asks a `ViewDocuments` for documents and positions.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from streams.core.views import Document
from streams.kafka.store import PartitionStore
from streams.kafka.tables import memory_cost
from streams.read.wakeups import BatchWakeups, Signal
from streams.wire.jsonable import json_bytes

DOC_PREFIX = b"d:"
"""The key space of a view's documents in its stores (the rest of the key: the entity id)."""

MAX_SCANNED = 20_000
"""Documents one request may examine on one worker before it answers with what it has."""
BUDGET_S = 0.5
"""Seconds one request may scan on one worker before it answers with what it has."""


def document_key(entity_key: bytes) -> bytes:
    """The store key of the document with entity key (UTF-8 id) `entity_key`."""
    return DOC_PREFIX + entity_key


def entity_id_of(key: bytes) -> str:
    """Inverse of `document_key`, decoded."""
    return key[len(DOC_PREFIX) :].decode()


def encode_document(doc: Document) -> bytes:
    """The store's form of a document (JSON: the state is JSON in the published record too)."""
    return json_bytes({"s": doc.state, "v": doc.versions, "l": doc.last_event_version, "u": doc.last_updated})


def decode_document(entity_id: str, raw: bytes) -> Document:
    """Inverse of `encode_document`."""
    data = orjson.loads(raw)
    return Document(entity_id, data["s"], data["v"], data["l"], data["u"])


ARRIVAL_POLL_S = 0.02
"""How often a request for a partition being restored here looks whether it has arrived."""


class DocumentCache:
    """The latest committed documents of one view version, decoded: a document the next batch
    changes again is not read back from RocksDB and parsed, and a `min_version` waiter reads a
    changed document's versions without decoding it.

    An entry belongs to the store object it was committed to, so a partition revoked and
    assigned again (a new store, which another worker may have moved on meanwhile) misses. The
    cache holds at most `budget` bytes of memory, each document counted as `memory_cost` of its
    stored (JSON) size; past it, the least recently stored go first, and a document costing more
    than the budget is not kept.
    Written by the stage's thread, read by it and by the event loop (single dict operations).
    """

    def __init__(self, budget: int, on_size: Callable[[int], None] | None = None) -> None:
        self.budget = budget
        self.bytes = 0
        # an OrderedDict, not a dict: evicting a plain dict's first key again and again walks over
        # the holes its earlier evictions left (9.5 µs a put at 20,000 entries, 0.4 here)
        self._entries: OrderedDict[tuple[int, bytes], tuple[object, Document, int]] = OrderedDict()
        self._on_size = on_size

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, partition: int, store: object, key: bytes) -> Document | None:
        """The cached document of `key`, if `store` is still the partition's store."""
        found = self._entries.get((partition, key))
        return found[1] if found is not None and found[0] is store else None

    def put(self, partition: int, store: object, key: bytes, doc: Document, size: int) -> None:
        """Remember `doc` (`size` bytes stored) as committed in `store`."""
        old = self._entries.pop((partition, key), None)
        if old is not None:
            self.bytes -= old[2]
        cost = memory_cost(size)
        if cost <= self.budget:
            self._entries[(partition, key)] = (store, doc, cost)
            self.bytes += cost
        while self.bytes > self.budget:
            self.bytes -= self._entries.popitem(last=False)[1][2]
        if self._on_size is not None:
            self._on_size(self.bytes)


class DocumentStores(Protocol):
    """What holds a view version's stores on one worker (its `ViewProjector`)."""

    @property
    def stores(self) -> Mapping[int, PartitionStore]:
        """The partitions this worker holds."""

    def store(self, partition: int) -> PartitionStore | None:
        """A partition's store, None when it is not held here (any more)."""

    @property
    def arriving(self) -> set[int]:
        """Partitions being assigned here now (restoring: not held yet)."""


@dataclass
class Scanned:
    """What a scan of this worker's partitions found: matching documents in id order with their
    stored sizes, how far it looked (None: to the end), the partitions it scanned and those it
    was asked for but does not hold."""

    documents: list[Document] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    horizon: str | None = None
    partitions: list[int] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)

    def stopped_at(self, entity_id: str) -> None:
        """A partition stopped early at `entity_id`: nothing past it is known."""
        self.horizon = entity_id if self.horizon is None else min(self.horizon, entity_id)


def _matches(state: dict[str, Any] | None, filters: Mapping[str, str]) -> bool:
    return state is not None and all(str(state.get(k)) == v for k, v in filters.items())


class ViewDocuments:
    """One view version's documents on this worker, as the query API reads them."""

    def __init__(
        self, source: DocumentStores, input_topic: str, wakeups: BatchWakeups, cache: DocumentCache
    ) -> None:
        self.source = source
        self.input_topic = input_topic
        self.wakeups = wakeups
        self.cache = cache

    def holds(self, partition: int) -> bool:
        """Whether this worker holds the partition now."""
        return self.source.store(partition) is not None

    async def arrival(self, partition: int, timeout_s: float) -> None:
        """Wait (at most `timeout_s`) while the partition is being assigned here: its store is
        restored from the view topic before it is held, and a request meanwhile waits for it
        rather than reading a half-filled store or being told to retry."""
        deadline = time.monotonic() + timeout_s
        while partition in self.source.arriving and time.monotonic() < deadline:
            await asyncio.sleep(ARRIVAL_POLL_S)

    def get(self, partition: int, entity_id: str) -> Document | None:
        """The stored document, read and decoded (None: absent or not held here; blocking)."""
        store = self.source.store(partition)
        raw = store.get(document_key(entity_id.encode())) if store is not None else None
        return None if raw is None else decode_document(entity_id, raw)

    def cached(self, partition: int, entity_id: str) -> Document | None:
        """The document as the last batch that changed it committed it, if still cached (no
        store read, no decoding: what a `min_version` waiter checks when woken)."""
        return self.cache.get(partition, self.source.store(partition), entity_id.encode())

    def position(self, partition: int) -> int | None:
        """The partition's next input offset (None: not held here, or closed under the caller:
        the partition is leaving this worker)."""
        store = self.source.store(partition)
        if store is None:
            return None
        try:
            return store.position(self.input_topic)
        except Exception:  # closed under us
            return None

    def signal(self, partition: int) -> Signal:
        """The partition's next commit (take it before checking: no commit is missed)."""
        return self.wakeups.signal(partition)

    @staticmethod
    def changed(signal: Signal, entity_id: str) -> bool:
        """Whether the commit that set `signal` may have changed the document."""
        return signal.changed is None or document_key(entity_id.encode()) in signal.changed

    def scan(
        self,
        after: str,
        limit: int,
        filters: Mapping[str, str],
        *,
        partitions: Iterable[int] | None = None,
        max_scanned: int = MAX_SCANNED,
        budget_s: float = BUDGET_S,
        max_bytes: int | None = None,
    ) -> Scanned:
        """Documents past `after` whose state has every filter's value, in id order per partition
        (default: every partition held here; blocking: run it in an executor). Each partition
        stops at `limit` matches; all stop once `max_scanned` documents were examined, `budget_s`
        passed, or the matches reach `max_bytes` (bar one per partition)."""
        wanted = sorted(self.source.stores) if partitions is None else sorted(set(partitions))
        found_all = Scanned()
        deadline = time.monotonic() + budget_s
        start = document_key(after.encode()) + b"\x00" if after else None
        scanned = 0
        found_bytes = 0
        for partition in wanted:
            store = self.source.store(partition)
            if store is None:  # not held here (revoked meanwhile): its documents are another's
                found_all.missing.append(partition)
                continue
            found = 0
            last = after
            try:
                for key, raw in store.scan(DOC_PREFIX, start):
                    last = entity_id_of(key)
                    scanned += 1
                    doc = decode_document(last, raw)
                    if _matches(doc.state, filters):
                        found_all.documents.append(doc)
                        found_all.sizes.append(len(raw))
                        found += 1
                        found_bytes += len(raw)
                    full = max_bytes is not None and found_bytes >= max_bytes
                    if found >= limit or full or scanned >= max_scanned or time.monotonic() > deadline:
                        found_all.stopped_at(last)
                        break
            except Exception:  # the store was closed under the scan (a rebalance): looked up to `last`
                found_all.stopped_at(last)
            found_all.partitions.append(partition)
        return found_all
