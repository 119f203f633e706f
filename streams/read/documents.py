"""The read side's cache of decoded documents, bounded in bytes."""

from __future__ import annotations

from collections.abc import Callable

from streams.core.views import Document

DECODED_PER_STORED_BYTE = 6
"""A decoded document takes about six times its stored JSON in Python objects (dicts, strings,
floats): measured with tracemalloc on an orders summary (5.9x) and a telemetry window (5.1x)."""
ENTRY_OVERHEAD = 300
"""The cache's own dict slot, key and tuple for one document, in bytes."""


def memory_cost(stored_size: int) -> int:
    """The memory one cached document is counted for: its decoded estimate plus the entry."""
    return stored_size * DECODED_PER_STORED_BYTE + ENTRY_OVERHEAD


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
        self._entries: dict[tuple[int, bytes], tuple[object, Document, int]] = {}
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
            oldest = next(iter(self._entries))
            self.bytes -= self._entries.pop(oldest)[2]
        if self._on_size is not None:
            self._on_size(self.bytes)
