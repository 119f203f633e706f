"""A window stage's state is a changelog-backed table whose store mirrors its changelog record
for record (none of the write side's key decoding), with decoded values cached."""

from __future__ import annotations

from pathlib import Path

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
