"""The history index answers a page of an aggregate's entries, reading only that page."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.config import Settings
from streams.contexts import orders
from streams.kafka import clients
from streams.kafka.runtime import ContextRuntime
from streams.kafka.store import PartitionStore
from streams.read.history_index import HistoryIndexer, NotOwned, history_key

PAIR = struct.Struct(">qq")


class CountingStore(PartitionStore):
    """A store that counts the keys its scans yield."""

    yielded = 0

    def scan(self, prefix: bytes, start: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        for item in super().scan(prefix, start):
            self.yielded += 1
            yield item


@pytest.fixture
def index(tmp_path: Path) -> Iterator[HistoryIndexer]:
    runtime = ContextRuntime.offline(orders.context, prefix="t.")
    made = HistoryIndexer(Settings(), runtime, group_id="g", inputs=[], data_dir=tmp_path, client_id="c")
    store = made.stores[0] = CountingStore(tmp_path / "p0")
    writes = {history_key("long", v): PAIR.pack(v * 10, v * 1000) for v in range(1, 10_001)}
    writes[history_key("other", 1)] = PAIR.pack(5, 0)
    store.write(writes, {})
    store.yielded = 0
    yield made
    store.close()


def test_a_page_reads_its_entries_and_one_more_key_not_the_whole_history(index: HistoryIndexer) -> None:
    page = index.entries(0, "long", from_version=9_000, limit=10)
    assert [(e.version, e.offset) for e in page] == [(v, v * 10) for v in range(9_000, 9_010)]
    store: Any = index.stores[0]
    assert store.yielded <= 11
    assert [e.version for e in index.entries(0, "long", 9_998, 10)] == [9_998, 9_999, 10_000]
    assert [e.version for e in index.entries(0, "long", 5, 1_000, up_to=7)] == [5, 6, 7]


def test_latest_and_as_of(index: HistoryIndexer) -> None:
    latest = index.latest(0, "long")
    assert latest is not None and latest.version == 10_000
    assert index.latest(0, "nobody") is None
    assert index.version_as_of(0, "long", 2_500) == 2 and index.version_as_of(0, "long", 10) is None
    with pytest.raises(NotOwned):
        index.entries(1, "long")


def test_pooled_readers_prefetch_little() -> None:
    config = clients.bounded_reader_config(Settings())
    assert config["queued.max.messages.kbytes"] <= 4 * 1024  # librdkafka's default: 65,536 (64 MiB)
    assert config["fetch.max.bytes"] <= 2 * 1024 * 1024  # librdkafka's default: 52,428,800
