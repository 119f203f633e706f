"""A changelog-backed table: open restores from the checkpoint to the end of the changelog (a
fake list of changelog records stands in for the topic), apply writes committed batches with
the offset they reach, the cache keeps to its bounds, close and reopen resume from the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Message
from prometheus_client import REGISTRY

from streams.config import Settings
from streams.kafka import tables
from streams.kafka.store import PartitionStore
from streams.kafka.tables import MISSING, ChangelogTable, Lookup, TableCache

TOPIC = "t.changelog"


class FakeChangelog:
    """The records of a changelog topic by partition, read the way `PartitionReader` reads."""

    def __init__(self) -> None:
        self.records: dict[int, list[Message]] = {}
        self.starts: list[tuple[int, int]] = []
        """(partition, start offset) of every read."""

    def append(self, partition: int, key: bytes, value: bytes | None, at_ms: int = 0) -> None:
        log = self.records.setdefault(partition, [])
        log.append(
            Message(
                topic=TOPIC, partition=partition, offset=len(log), key=key, value=value, timestamp=(1, at_ms)
            )
        )

    def reader(self, settings: Settings, topic: str, partition: int, start: int = 0) -> _FakeReader:
        assert topic == TOPIC
        self.starts.append((partition, start))
        return _FakeReader(self.records.get(partition, []), start)


class _FakeReader:
    def __init__(self, records: list[Message], start: int) -> None:
        self.records = records
        self.start = self.position = start
        self.stop = len(records)

    def batches(self, size: int) -> Any:
        while self.position < self.stop:
            batch = self.records[self.position : self.position + size]
            self.position += len(batch)
            yield batch

    def __enter__(self) -> _FakeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.fixture
def changelog(monkeypatch: pytest.MonkeyPatch) -> FakeChangelog:
    fake = FakeChangelog()
    monkeypatch.setattr(tables, "PartitionReader", fake.reader)
    return fake


def table(path: Path, cache: TableCache[Any] | None = None, **kwargs: Any) -> ChangelogTable[Any]:
    return ChangelogTable(Settings(), TOPIC, path, cache or TableCache(100), **kwargs)


def test_open_restores_a_partition_from_its_changelog(tmp_path: Path, changelog: FakeChangelog) -> None:
    changelog.append(0, b"a", b"1")
    changelog.append(0, b"b", b"2")
    changelog.append(0, b"a", None)  # a tombstone deletes
    changelog.append(1, b"c", b"3")
    made = table(tmp_path)
    store = made.open(0)
    assert made.owned() == [0] and 0 in made and 1 not in made
    assert made.get(0, b"a") is None and made.get(0, b"b") == b"2"
    assert store.get(b"c") is None  # another partition's record
    assert store.position(TOPIC) == 3
    made.close_all()


def test_reopening_resumes_from_the_checkpoint(tmp_path: Path, changelog: FakeChangelog) -> None:
    changelog.append(0, b"a", b"1")
    made = table(tmp_path)
    made.open(0)
    made.apply({0: {b"b": b"2"}}, {0: 2})  # committed with the changelog record at offset 1
    changelog.append(0, b"b", b"2")
    made.close([0])
    assert made.owned() == []
    changelog.append(0, b"c", b"3")  # written by another worker meanwhile
    made.open(0)
    assert changelog.starts == [(0, 0), (0, 2)]  # only what the store had not seen
    assert [made.get(0, k) for k in (b"a", b"b", b"c")] == [b"1", b"2", b"3"]
    made.close_all()


def test_restore_runs_the_owners_record_writes_over_pending_values(
    tmp_path: Path, changelog: FakeChangelog
) -> None:
    def counted(key: bytes, value: bytes | None, at_ms: int, headers: Any, stored: Lookup) -> list[Any]:
        before = int(stored(b"n:" + key) or b"0")
        return [(key, value), (b"n:" + key, str(before + 1).encode())]

    for value in (b"x", b"y", b"z"):
        changelog.append(0, b"k", value)
    made = table(tmp_path, record_writes=counted)
    made.open(0)
    assert made.get(0, b"k") == b"z" and made.get(0, b"n:k") == b"3"  # each record saw the last
    made.close_all()


def test_a_stale_store_is_restored_from_the_start(tmp_path: Path, changelog: FakeChangelog) -> None:
    changelog.append(0, b"a", b"1")
    old = PartitionStore(tmp_path / "p0")
    old.write({b"old": b"format"}, {TOPIC: 1})
    old.close()
    made = table(tmp_path, stale=lambda store: "old format" if store.get(b"old") else None)
    made.open(0)
    assert made.get(0, b"old") is None and made.get(0, b"a") == b"1"
    assert changelog.starts == [(0, 0)]
    made.close_all()


def test_apply_writes_only_partitions_owned_and_committed(tmp_path: Path, changelog: FakeChangelog) -> None:
    made = table(tmp_path)
    made.open(0)
    made.open(1)
    written = made.apply({0: {b"a": b"1"}, 1: {b"b": b"2"}, 2: {b"c": b"3"}}, {0: 7, 2: 1})
    assert written == [0]  # 1: no changelog offset; 2: not owned
    assert made.get(0, b"a") == b"1" and made.get(1, b"b") is None
    assert made.stores[0].position(TOPIC) == 7
    made.close_all()


def test_the_cache_keeps_to_its_entries_and_bytes() -> None:
    cache: TableCache[str] = TableCache(entries=3, max_bytes=100)
    for i in range(5):
        cache.put(0, b"k%d" % i, f"v{i}", 10)
    assert len(cache) == 3 and cache.bytes == 30
    assert cache.get(0, b"k0") is MISSING and cache.get(0, b"k4") == "v4"
    cache.put(0, b"k2", "again", 10)  # written again: the newest
    cache.put(0, b"big", "big", 80)
    assert cache.get(0, b"k2") == "again" and cache.get(0, b"k3") is MISSING  # the oldest left
    assert cache.bytes <= 100
    cache.put(1, b"none", None, 0)  # type: ignore[arg-type]
    assert cache.get(1, b"none") is None  # a cached None is not a miss
    cache.forget([0])
    assert len(cache) == 1 and (1, b"none") in cache and cache.bytes == 0


def test_a_cache_with_slack_evicts_in_steps() -> None:
    cache: TableCache[int] = TableCache(entries=10, slack=3)
    for i in range(11):
        cache.put(0, bytes([i]), i)
    assert len(cache) == 7  # past the bound: down to 10 - 3 at once
    assert cache.get(0, bytes([3])) is MISSING and cache.get(0, bytes([4])) == 4


def test_close_forgets_the_cache_of_partitions_given_up(tmp_path: Path, changelog: FakeChangelog) -> None:
    made = table(tmp_path)
    made.open(0)
    made.open(1)
    made.cache.put(0, b"a", "zero")
    made.cache.put(1, b"a", "one")
    made.close([0])
    assert made.cache.get(0, b"a") is MISSING and made.cache.get(1, b"a") == "one"
    made.close_all()
    assert len(made.cache) == 0 and made.owned() == []


def test_a_restore_is_timed_and_its_records_counted_per_partition(
    tmp_path: Path, changelog: FakeChangelog
) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = sample("streams_restored_records_total", topic=TOPIC, partition="3")
    timed = sample("streams_restore_seconds_count", topic=TOPIC)
    for n in range(5):
        changelog.append(3, b"k%d" % n, b"v")
    made = table(tmp_path)
    made.open(3)
    assert sample("streams_restored_records_total", topic=TOPIC, partition="3") == before + 5
    assert sample("streams_restore_seconds_count", topic=TOPIC) == timed + 1
    made.close_all()
