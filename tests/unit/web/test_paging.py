"""Paging a filtered list over real RocksDB stores, spread over partitions and two workers:
the concatenated pages are the full result, in order, without duplicates (property-based)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.core.views import Document
from streams.kafka.store import PartitionStore
from streams.read.documents import DocumentCache, ViewDocuments, document_key, encode_document
from streams.read.wakeups import BatchWakeups
from streams.web.query.paging import LocalPage, local_page, merge
from streams.wire.topics import partition_for

PARTITIONS = 4
# ids whose order trips naive comparisons: prefixes of each other, multi-byte UTF-8, digits
ids = st.text(
    alphabet=st.sampled_from(["a", "b", "z", "0", "9", "é", "ÿ", "日", "-"]), min_size=1, max_size=5
)
documents = st.dictionaries(ids, st.sampled_from(["open", "shipped", None]), max_size=40)


class Stores:
    """The stores of the partitions one worker holds (what a projector holds)."""

    def __init__(self, stores: dict[int, PartitionStore]) -> None:
        self.stores: Mapping[int, PartitionStore] = stores

    def store(self, partition: int) -> PartitionStore | None:
        return self.stores.get(partition)


def view_documents(stores: dict[int, PartitionStore]) -> ViewDocuments:
    """One worker's documents of the view over `stores`."""
    return ViewDocuments(Stores(stores), "in", BatchWakeups(), DocumentCache(0))


@contextmanager
def written(states: dict[str, dict[str, Any] | None]) -> Iterator[dict[int, PartitionStore]]:
    """Stores of four partitions holding a document per id with the given state."""
    with tempfile.TemporaryDirectory() as directory:
        out = {p: PartitionStore(Path(directory) / f"p{p}") for p in range(PARTITIONS)}
        try:
            for entity_id, state in states.items():
                doc = Document(entity_id, state, {entity_id: 1}, 1, "")
                partition = partition_for(entity_id.encode(), PARTITIONS)
                out[partition].write({document_key(entity_id.encode()): encode_document(doc)}, {})
            yield out
        finally:
            for store in out.values():
                store.close()


def stores(docs: dict[str, str | None]) -> Any:
    """Documents with a status (None: deleted)."""
    return written({i: None if status is None else {"status": status, "id": i} for i, status in docs.items()})


def expected(docs: dict[str, str | None], status: str | None) -> list[str]:
    return sorted(i for i, s in docs.items() if s is not None and (status is None or s == status))


def all_pages(
    workers: list[ViewDocuments],
    owners: dict[int, int],
    limit: int,
    filters: dict[str, str],
    max_scanned: int,
    max_bytes: int | None = None,
) -> list[list[dict[str, Any]]]:
    """Follow `next` from the first page to the last, as a client does."""
    pages = []
    after = ""
    for _ in range(10_000):
        found: list[LocalPage] = []
        for index, worker in enumerate(workers):
            mine = [p for p, owner in owners.items() if owner == index]
            found.append(
                local_page(
                    worker,
                    "v",
                    after,
                    limit,
                    filters,
                    partitions=mine,
                    max_scanned=max_scanned,
                    max_bytes=max_bytes,
                )
            )
        assert not any(page.missing for page in found)
        items, cursor = merge(found, limit, max_bytes)
        assert len(items) <= limit
        pages.append(items)
        if cursor is None:
            return pages
        assert cursor > after or not after, "the cursor must move forward"
        after = cursor
    raise AssertionError("paging did not end")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    documents,
    st.sampled_from([None, "open", "shipped"]),
    st.integers(1, 6),
    st.integers(1, 12),
    st.lists(st.integers(0, 1), min_size=PARTITIONS, max_size=PARTITIONS),
)
def test_concatenated_pages_are_the_full_result_in_order_without_duplicates(
    docs: dict[str, str | None], status: str | None, limit: int, max_scanned: int, split: list[int]
) -> None:
    filters = {} if status is None else {"status": status}
    with stores(docs) as held:
        owners = dict(enumerate(split))
        workers = [view_documents({p: s for p, s in held.items() if owners[p] == w}) for w in (0, 1)]
        pages = all_pages(workers, owners, limit, filters, max_scanned)
    got = [item["entity_id"] for page in pages for item in page]
    assert got == expected(docs, status)


@settings(max_examples=50, deadline=None)
@given(documents, st.integers(1, 6))
def test_one_worker_holding_every_partition_pages_the_same_way(
    docs: dict[str, str | None], limit: int
) -> None:
    with stores(docs) as held:
        pages = all_pages([view_documents(held)], dict.fromkeys(range(PARTITIONS), 0), limit, {}, 20_000)
    assert [item["entity_id"] for page in pages for item in page] == expected(docs, None)


def test_a_partition_asked_of_a_worker_that_no_longer_holds_it_is_reported_missing() -> None:
    docs = {f"d{i}": "open" for i in range(20)}
    with stores(docs) as held:
        worker = view_documents({p: s for p, s in held.items() if p != 2})
        page = local_page(worker, "v", "", 50, {}, partitions=[0, 1, 2, 3])
    assert page.missing == [2] and page.partitions == [0, 1, 3]
    assert len(page.items) == sum(1 for d in docs if partition_for(d.encode(), PARTITIONS) != 2)


def sized_stores(sizes: dict[str, int]) -> Any:
    """Documents of about the given sizes in bytes."""
    return written({i: {"id": i, "pad": "x" * size} for i, size in sizes.items()})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(ids, st.integers(0, 3000), max_size=30),
    st.integers(1, 8),
    st.integers(500, 4000),
    st.lists(st.integers(0, 1), min_size=PARTITIONS, max_size=PARTITIONS),
)
def test_pages_keep_to_their_byte_budget_and_still_page_every_document(
    sizes: dict[str, int], limit: int, max_bytes: int, split: list[int]
) -> None:
    with sized_stores(sizes) as held:
        owners = dict(enumerate(split))
        workers = [view_documents({p: s for p, s in held.items() if owners[p] == w}) for w in (0, 1)]
        pages = all_pages(workers, owners, limit, {}, 20_000, max_bytes)
    assert [item["entity_id"] for page in pages for item in page] == sorted(sizes)
    for page in pages:
        stored = [len(item["state"]["pad"]) + 100 for item in page]  # the padding and the rest
        assert len(page) <= 1 or sum(stored) <= max_bytes + 100 * len(page), stored


def test_a_document_larger_than_the_budget_is_served_alone_and_paging_goes_on() -> None:
    sizes = {"a": 10, "b": 50_000, "c": 10, "d": 10}
    with sized_stores(sizes) as held:
        pages = all_pages([view_documents(held)], dict.fromkeys(range(PARTITIONS), 0), 10, {}, 20_000, 1000)
    assert [[item["entity_id"] for item in page] for page in pages] == [["a"], ["b"], ["c", "d"]]
