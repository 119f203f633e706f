"""A window stage's state: one RocksDB store per owned partition, mirrored by its changelog.

Key spaces of a partition's store (and of `<ctx>.<name>.windows-changelog`, compacted):

| key | value |
|---|---|
| `w:` end (8 bytes) + key + `\\0` + group | an open window: `{"a": accumulator, "t": latest event time}` |
| `t:` record key | the join table's row: `{"v": aggregate version, "r": row}` (JSON) |
| `l:` record key | the heartbeat bucket the key's timer is in (8 bytes) |
| `h:` bucket (8 bytes) + record key | a heartbeat timer: the latest last-seen time it stands for (8 bytes) |
| `s:` | the partition's stream time (8 bytes) |

Window and timer keys start with their time in offset binary, so RocksDB keeps them in time
order and closing is a scan from the first key to the stream time. Writes reach a store only
after the transaction that carried them to the changelog committed (`apply`), so a store is
never ahead of the log; a restarted worker replays the changelog from its checkpoint.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import orjson

from streams import metrics
from streams.config import Settings
from streams.kafka.tables import MISSING, ChangelogTable, TableCache, Writes, memory_cost

WINDOW = b"w:"
ROW = b"t:"
BEAT = b"l:"
TIMER = b"h:"
STREAM_TIME = b"s:"
SEPARATOR = b"\x00"
_TIME = struct.Struct(">Q")
_SIGNED = struct.Struct(">q")
_BIAS = 1 << 63
NO_TIME = -(1 << 62)
"""The stream time of a partition that has accepted nothing yet."""


def time_bytes(ms: int) -> bytes:
    """A time that sorts bytewise like the number (offset binary)."""
    return _TIME.pack(ms + _BIAS)


def time_of(raw: bytes, at: int = 0) -> int:
    """Inverse of `time_bytes` (at byte `at`)."""
    return int(_TIME.unpack_from(raw, at)[0]) - _BIAS


def window_key(end: int, key: bytes, group: bytes) -> bytes:
    """The store key of an open window."""
    return WINDOW + time_bytes(end) + key + SEPARATOR + group


def split_window_key(raw: bytes) -> tuple[int, bytes, bytes]:
    """(end, record key, group) of a window key."""
    end = time_of(raw, len(WINDOW))
    key, _, group = raw[len(WINDOW) + 8 :].partition(SEPARATOR)
    return end, key, group


def timer_key(bucket: int, key: bytes) -> bytes:
    """The store key of a heartbeat timer."""
    return TIMER + time_bytes(bucket) + key


def split_timer_key(raw: bytes) -> tuple[int, bytes]:
    """(bucket, record key) of a timer key."""
    return time_of(raw, len(TIMER)), raw[len(TIMER) + 8 :]


def encode_window(accumulator: Any, latest: int) -> bytes:
    """A window's value: its accumulator and the latest event time folded into it."""
    return orjson.dumps({"a": accumulator, "t": latest})


def decode_window(raw: bytes) -> tuple[Any, int]:
    """(accumulator, latest event time) of a window's value."""
    data = orjson.loads(raw)
    return data["a"], int(data["t"])


def encode_row(version: int, row: Any) -> bytes:
    """A join-table row with the version of the event that set it."""
    return orjson.dumps({"v": version, "r": row})


def decode_row(raw: bytes) -> tuple[int, Any]:
    """(version, row) of a join-table value."""
    data = orjson.loads(raw)
    return int(data["v"]), data["r"]


def encode_long(value: int) -> bytes:
    """A signed 64-bit big-endian integer (stream times)."""
    return _SIGNED.pack(value)


def decode_long(raw: bytes) -> int:
    """The integer of `encode_long`."""
    return int(_SIGNED.unpack(raw)[0])


class WindowReader(Protocol):
    """The committed state the intake decides against (`streams.windows.state.WindowState`)."""

    def decoded(self, partition: int, key: bytes) -> Any:
        """A committed value, decoded by its key space (None: absent)."""

    def scan_until(self, partition: int, prefix: bytes, upper: int) -> Iterable[bytes]:
        """Committed keys with `prefix` whose time is <= `upper`, in order."""

    def stream_time(self, partition: int) -> int:
        """The partition's committed stream time."""


class WindowState:
    """The committed state of a window stage's partitions: a changelog-backed table
    (`streams.kafka.tables`) whose store mirrors its changelog record for record, with a bounded
    cache of decoded values in front of RocksDB (filled and changed only by committed batches)."""

    def __init__(
        self, settings: Settings, changelog: str, data_dir: Path, cache_size: int = 50_000, name: str = ""
    ) -> None:
        self.settings = settings
        self.changelog = changelog
        self.data_dir = data_dir
        self.cache_size = cache_size
        self.cache: TableCache[Any] = TableCache(
            cache_size, settings.window_cache_bytes, slack=cache_size // 10
        )
        """Decoded committed values (None: absent), the least recently written evicted first; at
        most `cache_size` of them and `STREAMS_WINDOW_CACHE_BYTES` of estimated memory."""
        self._bytes_gauge = metrics.WINDOW_CACHE_BYTES.labels(name)
        self.table: ChangelogTable[Any] = ChangelogTable(settings, changelog, data_dir, self.cache)
        self.stores = self.table.stores

    def owned(self) -> list[int]:
        """The partitions this worker holds state for."""
        return self.table.owned()

    def __contains__(self, partition: object) -> bool:
        return partition in self.table

    def open(self, partition: int) -> None:
        """Open a partition's store and bring it up to the end of its changelog."""
        self.table.open(partition)

    def close(self, partitions: list[int]) -> None:
        """Close the stores of partitions given up and forget what is cached of them."""
        self.table.close(partitions)

    def close_all(self) -> None:
        """Close every store."""
        self.table.close_all()

    # --- reads (the intake's `WindowReader`) ------------------------------------------------

    def get(self, partition: int, key: bytes) -> bytes | None:
        """A committed value."""
        return self.table.get(partition, key)

    def decoded(self, partition: int, key: bytes) -> Any:
        """A committed value decoded by its key space (None: absent), through the cache."""
        found = self.cache.get(partition, key)
        if found is not MISSING:
            return found
        raw = self.table.get(partition, key)
        value = None if raw is None else decode_value(key, raw)
        self._remember(partition, key, value, raw)
        return value

    def scan_until(self, partition: int, prefix: bytes, upper: int) -> Iterator[bytes]:
        """Committed keys with `prefix` whose time (the 8 bytes after it) is <= `upper`, in order."""
        bound = prefix + time_bytes(upper)
        for key, _ in self.stores[partition].scan(prefix):
            if key[: len(bound)] > bound:
                return
            yield key

    def stream_time(self, partition: int) -> int:
        """The partition's committed stream time (NO_TIME when none)."""
        value = self.decoded(partition, STREAM_TIME)
        return NO_TIME if value is None else int(value)

    # --- committed batches ----------------------------------------------------------------

    def apply(
        self, writes: dict[int, Writes], changelog_end: dict[int, int], decoded: dict[tuple[int, bytes], Any]
    ) -> None:
        """A committed batch: its changelog records into the stores (with the changelog offset
        they reach) and their decoded values into the cache."""
        self.table.apply(writes, changelog_end)
        for (partition, key), value in decoded.items():
            if partition in self.stores:
                self._remember(partition, key, value, writes.get(partition, {}).get(key))
        self._bytes_gauge.set(self.cache.bytes)

    def _remember(self, partition: int, key: bytes, value: Any, raw: bytes | None) -> None:
        """Cache a committed value (`raw`: its stored form, which sizes it)."""
        if value is None and key[:2] == WINDOW:
            self.cache.discard(partition, key)  # a closed window is not asked for again
        else:
            self.cache.put(partition, key, value, memory_cost(len(key) + (len(raw) if raw else 0)))


def encode_value(key: bytes, value: Any) -> bytes:
    """A decoded value stored by its key space (inverse of `decode_value`)."""
    prefix = key[:2]
    if prefix == WINDOW:
        return encode_window(value[0], value[1])
    if prefix == ROW:
        return encode_row(value[0], value[1])
    return encode_long(value)


def decode_value(key: bytes, raw: bytes) -> Any:
    """A stored value, decoded by its key space."""
    prefix = key[:2]
    if prefix == WINDOW:
        return decode_window(raw)
    if prefix == ROW:
        return decode_row(raw)
    return decode_long(raw)
