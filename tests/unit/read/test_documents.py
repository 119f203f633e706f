"""The read side's document cache is bounded in bytes, and waiters wake on commits."""

from __future__ import annotations

import asyncio
import threading

from streams.core.views import Document
from streams.read.documents import DocumentCache, memory_cost
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
