"""The read side's documents: their key and stored form round trip, scans over partitions stop
at their limits, the cache is bounded in bytes, and waiters wake on commits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.core.views import Document
from streams.kafka.store import PartitionStore
from streams.kafka.tables import memory_cost
from streams.read.documents import (
    DOC_PREFIX,
    DocumentCache,
    ViewDocuments,
    decode_document,
    document_key,
    encode_document,
    entity_id_of,
)
from streams.read.wakeups import BatchWakeups


def test_the_cache_keeps_at_most_its_byte_budget_oldest_out_first() -> None:
    sizes: list[int] = []
    cost = memory_cost(300)  # a document is counted for its decoded estimate, not its stored bytes
    cache = DocumentCache(3 * cost + cost // 2, on_size=sizes.append)
    store = object()
    for i in range(10):
        cache.put(0, store, f"k{i}".encode(), Document(f"k{i}", {"i": i}), 300)
    assert cache.bytes == 3 * cost and len(cache) == 3 and sizes[-1] == 3 * cost
    assert cache.get(0, store, b"k9") is not None and cache.get(0, store, b"k6") is None
    assert cache.get(0, object(), b"k9") is None  # another store: the partition moved meanwhile


def test_a_document_bigger_than_the_budget_is_not_kept_and_drops_its_older_entry() -> None:
    cache = DocumentCache(memory_cost(1000))
    store = object()
    cache.put(0, store, b"big", Document("big", {}), 100)
    cache.put(0, store, b"big", Document("big", {"x": 1}), 1001)
    assert cache.get(0, store, b"big") is None and cache.bytes == 0


def test_a_commit_from_another_thread_wakes_the_partitions_waiters_with_the_keys_written() -> None:
    wakeups = BatchWakeups()

    async def scenario() -> tuple[bool, frozenset[bytes] | None, bool]:
        signal = wakeups.signal(1)
        other = wakeups.signal(2)
        threading.Thread(target=wakeups.committed, args=([1], {1: [b"d:a"]})).start()
        woke = await signal.wait(5)
        return woke, signal.changed, await other.wait(0.05)

    woke, changed, other_woke = asyncio.run(scenario())
    assert woke and changed == frozenset({b"d:a"}) and not other_woke


def test_a_document_key_and_its_stored_form_round_trip() -> None:
    for entity_id in ("o-1", "é日", "a:b", ""):
        key = document_key(entity_id.encode())
        assert key.startswith(DOC_PREFIX) and entity_id_of(key) == entity_id
    doc = Document("o-1", {"status": "open", "n": [1, 2.5]}, {"o-1": 3, "o-2": 1}, 3, "2026-01-01T00:00:00Z")
    assert decode_document("o-1", encode_document(doc)) == doc


class _Stores:
    """The stores one worker holds of a view (what a projector holds)."""

    def __init__(self, stores: dict[int, PartitionStore]) -> None:
        self.stores = stores

    def store(self, partition: int) -> PartitionStore | None:
        return self.stores.get(partition)


@pytest.fixture
def documents(tmp_path: Path) -> Iterator[tuple[ViewDocuments, dict[int, PartitionStore]]]:
    """Three partitions: ids a0..a9 in partition 0, b0..b9 in 1, c0..c9 in 2; even ones open."""
    stores = {p: PartitionStore(tmp_path / f"p{p}") for p in range(3)}
    for partition, letter in enumerate("abc"):
        writes: dict[bytes, bytes | None] = {}
        for i in range(10):
            entity_id = f"{letter}{i}"
            state = {"status": "open" if i % 2 == 0 else "shipped"}
            writes[document_key(entity_id.encode())] = encode_document(Document(entity_id, state, {}, i, ""))
        writes[b"x:not-a-document"] = b"{}"  # another key space of the same store
        stores[partition].write(writes, {"orders.events": 100 + partition})
    yield ViewDocuments(_Stores(stores), "orders.events", BatchWakeups(), DocumentCache(1 << 20)), stores
    for store in stores.values():
        store.close()


def test_a_scan_reads_every_partition_held_in_id_order_per_partition(
    documents: tuple[ViewDocuments, dict[int, PartitionStore]],
) -> None:
    view, _ = documents
    found = view.scan("", 100, {"status": "open"})
    assert [d.entity_id for d in found.documents] == [f"{x}{i}" for x in "abc" for i in (0, 2, 4, 6, 8)]
    assert found.horizon is None and found.partitions == [0, 1, 2] and found.missing == []
    assert all(size > 0 for size in found.sizes)
    after = view.scan("b4", 100, {}, partitions=[1])  # the cursor: strictly after it
    assert [d.entity_id for d in after.documents] == ["b5", "b6", "b7", "b8", "b9"]


def test_a_scan_stops_at_its_limits_and_says_how_far_it_looked(
    documents: tuple[ViewDocuments, dict[int, PartitionStore]],
) -> None:
    view, _ = documents
    limited = view.scan("", 2, {"status": "shipped"}, partitions=[0])
    assert [d.entity_id for d in limited.documents] == ["a1", "a3"] and limited.horizon == "a3"
    scanned = view.scan("", 100, {"status": "shipped"}, max_scanned=5)  # 5 examined, then no more
    assert [d.entity_id for d in scanned.documents] == ["a1", "a3"] and scanned.horizon == "a4"
    assert scanned.partitions == [0, 1, 2]  # each later partition stops at its first document
    by_bytes = view.scan("", 100, {}, max_bytes=1)  # one document per partition, bar none
    assert [d.entity_id for d in by_bytes.documents] == ["a0", "b0", "c0"]
    timed = view.scan("", 100, {}, budget_s=-1.0)
    assert len(timed.documents) == 3 and timed.horizon == "a0"


def test_a_partition_not_held_is_missing_and_has_no_position(
    documents: tuple[ViewDocuments, dict[int, PartitionStore]],
) -> None:
    view, stores = documents
    assert view.position(1) == 101 and view.holds(1)
    held = stores.pop(1)
    try:
        found = view.scan("", 100, {}, partitions=[1, 2])
        assert found.missing == [1] and found.partitions == [2]
        assert view.position(1) is None and not view.holds(1) and view.get(1, "b0") is None
    finally:
        stores[1] = held


def test_a_document_is_read_from_its_store_and_from_the_cache_of_that_store(
    documents: tuple[ViewDocuments, dict[int, PartitionStore]],
) -> None:
    view, stores = documents
    doc = view.get(0, "a2")
    assert doc is not None and doc.state == {"status": "open"} and view.get(0, "zz") is None
    assert view.cached(0, "a2") is None
    newer = Document("a2", {"status": "shipped"}, {}, 3, "")
    view.cache.put(0, stores[0], b"a2", newer, 40)
    assert view.cached(0, "a2") == newer
    view.cache.put(0, object(), b"a2", newer, 40)  # committed to a store this worker no longer has
    assert view.cached(0, "a2") is None


def test_a_waiter_rereads_only_when_the_commit_may_have_changed_its_document() -> None:
    wakeups = BatchWakeups()
    view = ViewDocuments(_Stores({}), "in", wakeups, DocumentCache(0))

    async def scenario() -> tuple[bool, bool, bool]:
        mine, other, unknown = view.signal(0), view.signal(1), view.signal(2)
        wakeups.committed([0, 1], {0: [document_key(b"o-1")], 1: [document_key(b"o-2")]})
        wakeups.committed([2])
        return view.changed(mine, "o-1"), view.changed(other, "o-1"), view.changed(unknown, "o-1")

    assert asyncio.run(scenario()) == (True, False, True)
