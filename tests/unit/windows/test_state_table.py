"""A window stage's state is a changelog-backed table whose store mirrors its changelog record
for record (none of the write side's key decoding), with decoded values cached."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from streams.config import Settings
from streams.kafka import tables
from streams.windows.state import STREAM_TIME, WINDOW, WindowState, encode_long, encode_window, window_key
from tests.unit.kafka.test_tables import TOPIC, FakeChangelog, changelog  # noqa: F401 - the fixture


def test_a_window_state_restores_its_changelog_as_written(
    tmp_path: Path,
    changelog: FakeChangelog,  # noqa: F811
) -> None:
    key = window_key(60_000, b"d-1", b"")
    changelog.append(0, key, encode_window(3, 59_000))
    changelog.append(0, STREAM_TIME, encode_long(59_500))
    changelog.append(0, b"r:" + bytes(8), b"\x90")  # a write-side results key is just a key here
    state = WindowState(Settings(), TOPIC, tmp_path)
    assert state.table.record_writes is tables.as_written
    state.open(0)
    assert state.stream_time(0) == 59_500 and state.decoded(0, key) == (3, 59_000)
    assert state.get(0, b"r:" + bytes(8)) == b"\x90"
    assert list(state.scan_until(0, WINDOW, 60_000)) == [key]
    state.apply({0: {key: None}}, {0: 4}, {(0, key): None})  # a closed window leaves the cache
    assert (0, key) not in state.cache and state.decoded(0, key) is None
    state.close_all()


def test_the_window_cache_keeps_to_its_byte_budget(
    tmp_path: Path,
    changelog: FakeChangelog,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The decoded windows are counted as the memory they take (`memory_cost` of their stored
    JSON), not only by count: a budget of ten windows' estimate holds about ten."""
    accumulator = {"count": 1, "sum": 2.5, "min": 1.0, "max": 9.0, "name": "x" * 200}
    stored = encode_window(accumulator, 59_000)
    key_size = len(window_key(60_000, b"d-0000", b"temperature"))
    monkeypatch.setenv("STREAMS_WINDOW_CACHE_BYTES", str(10 * tables.memory_cost(key_size + len(stored))))
    state = WindowState(Settings(), TOPIC, tmp_path, name="telemetry")
    state.open(0)
    for n in range(100):
        key = window_key(60_000, b"d-%04d" % n, b"temperature")
        state.apply({0: {key: stored}}, {0: n + 1}, {(0, key): (accumulator, 59_000)})
    assert len(state.cache) == 10
    assert state.cache.bytes <= int(os.environ["STREAMS_WINDOW_CACHE_BYTES"])
    gauge = REGISTRY.get_sample_value("streams_window_cache_bytes", {"window": "telemetry"})
    assert gauge == state.cache.bytes
    newest = window_key(60_000, b"d-0099", b"temperature")
    assert (0, newest) in state.cache and state.decoded(0, newest) == (accumulator, 59_000)
    oldest = window_key(60_000, b"d-0000", b"temperature")
    assert (0, oldest) not in state.cache
    assert state.decoded(0, oldest) == (accumulator, 59_000)  # read back from RocksDB
    state.close_all()
