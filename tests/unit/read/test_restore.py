"""Restoring a store from a compacted partition, without Kafka: the latest value of each key,
converted once, and nothing left of a restore that was cut short."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.config import Settings
from streams.kafka.store import PartitionStore
from streams.read import restore
from streams.read.restore import STAGING, Chunk, restore_partition


def test_each_key_gets_its_latest_value_converted_once_and_tombstones_delete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = [
        Chunk({b"a": b"1", b"b": b"1", b"c": b"1"}, 5),
        Chunk({b"a": b"2", b"c": None}, 3),  # a changed again, c deleted
    ]
    monkeypatch.setattr(restore, "latest_values", lambda *_args, **_kw: iter(chunks))
    store = PartitionStore(tmp_path / "p0")
    try:
        store.write({STAGING + b"zombie": b"9"}, {})  # left by a restore cut short
        converted: list[bytes] = []

        def convert(key: bytes, value: bytes) -> tuple[bytes, bytes]:
            converted.append(key)
            return b"d:" + key, value + b"!"

        keys, records = restore_partition(Settings(), "t", 0, store, convert)
        assert (keys, records) == (2, 8)
        assert sorted(converted) == [b"a", b"b"]
        assert dict(store.scan(b"d:")) == {b"d:a": b"2!", b"d:b": b"1!"}
        assert list(store.scan(STAGING)) == []
    finally:
        store.close()
