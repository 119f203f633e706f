"""The write side's state changelog: its record format (keys, values, what a record becomes in a store).

Keys are `a:<aggregate id>` (value: the aggregate in the internal state format,
`streams.wire.state`) and `r:<next command offset>` (value: MessagePack of the `[command id,
first CommandResult in Avro]` pairs of one batch of one partition, for dedupe: one record per
batch rather than one per command). Changelogs written before hold `c:<command id>` records with
one result each (`streams rebuild` still writes those); both restore into the store's
`c:<command id>` keys. The topic is compacted; RocksDB mirrors it and restores from it
(`streams.kafka.tables.restore`). The write side writes it, `streams rebuild` rewrites it from
the log, and `streams.kafka.fold` reads its aggregates: all through this module.

Command ids are remembered for the idempotency window only (`STREAMS_IDEMPOTENCY_WINDOW_MS`,
docs/write-side.md): the store indexes each results record under `e:<time ms><changelog key>`
(value: its command ids), and once the window has passed, the write loop deletes the ids and
writes a tombstone for the record, in the transaction of a batch. A tombstone carries the
record's time in its `streams-results-at` header, so a restore that meets it deletes the ids
the record had put in the store.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import msgspec

from streams.core.commands import Aggregate
from streams.wire.state import StateFormat

AGGREGATE_PREFIX = b"a:"
COMMAND_PREFIX = b"c:"
RESULTS_PREFIX = b"r:"
EXPIRY_PREFIX = b"e:"
RESULTS_AT = "streams-results-at"
"""The header of a results tombstone: the time (ms, 8 bytes big-endian) of the record it expires."""
_VERSION = struct.Struct(">q")
_RESULTS_ENCODER = msgspec.msgpack.Encoder()
_RESULTS_DECODER = msgspec.msgpack.Decoder(list[tuple[bytes, bytes]])
_IDS_DECODER = msgspec.msgpack.Decoder(list[bytes])


def results_key(next_offset: int) -> bytes:
    """The changelog key of a batch's results: unique per partition, as offsets only grow."""
    return RESULTS_PREFIX + _VERSION.pack(next_offset)


def encode_results(results: dict[bytes, bytes]) -> bytes:
    """A batch's first results by command id, as one changelog value."""
    return _RESULTS_ENCODER.encode(list(results.items()))


def expiry_key(at_ms: int, changelog_key: bytes) -> bytes:
    """The store's index key of a results record written at `at_ms` (time-ordered)."""
    return EXPIRY_PREFIX + _VERSION.pack(at_ms) + changelog_key


def split_expiry_key(key: bytes) -> tuple[int, bytes]:
    """(time ms, changelog key) of an index key (inverse of `expiry_key`)."""
    return _VERSION.unpack_from(key, len(EXPIRY_PREFIX))[0], key[len(EXPIRY_PREFIX) + _VERSION.size :]


def encode_ids(command_ids: list[bytes]) -> bytes:
    """The value of an index key: the command ids its results record remembers."""
    return _RESULTS_ENCODER.encode(command_ids)


def decode_ids(value: bytes) -> list[bytes]:
    """Inverse of `encode_ids`."""
    return _IDS_DECODER.decode(value)


class ExpiredResults(msgspec.Struct, frozen=True):
    """A results record of the changelog whose command ids left the idempotency window."""

    partition: int
    changelog_key: bytes
    at_ms: int
    command_ids: tuple[bytes, ...]

    def store_deletes(self) -> dict[bytes, bytes | None]:
        """The store keys it leaves: its ids and its index key."""
        deletes: dict[bytes, bytes | None] = {COMMAND_PREFIX + c: None for c in self.command_ids}
        deletes[expiry_key(self.at_ms, self.changelog_key)] = None
        return deletes

    def tombstone_headers(self) -> list[tuple[str, bytes]]:
        """The headers of its changelog tombstone."""
        return [(RESULTS_AT, _VERSION.pack(self.at_ms))]


def store_writes(key: bytes, value: bytes | None, at_ms: int = 0) -> list[tuple[bytes, bytes | None]]:
    """What one changelog record written at `at_ms` becomes in the store (a batch's results: one
    key each, and the index key that expires them)."""
    if key.startswith(RESULTS_PREFIX) and value is not None:
        pairs = _RESULTS_DECODER.decode(value)
        writes: list[tuple[bytes, bytes | None]] = [(COMMAND_PREFIX + c, result) for c, result in pairs]
        writes.append((expiry_key(at_ms, key), encode_ids([c for c, _ in pairs])))
        return writes
    if key.startswith(COMMAND_PREFIX) and value is not None:
        return [(key, value), (expiry_key(at_ms, key), encode_ids([key[len(COMMAND_PREFIX) :]]))]
    return [(key, value)]


def record_writes(
    key: bytes, value: bytes | None, at_ms: int, headers: Any, stored: Callable[[bytes], bytes | None]
) -> list[tuple[bytes, bytes | None]]:
    """What one changelog record (written at `at_ms`) becomes in a store whose current values
    `stored` gives: a results tombstone deletes the ids of the record it expires."""
    if value is not None:
        return store_writes(key, value, at_ms)
    at = dict(headers or ()).get(RESULTS_AT)
    if at is None or not (key.startswith(RESULTS_PREFIX) or key.startswith(COMMAND_PREFIX)):
        return [(key, None)]
    index = expiry_key(_VERSION.unpack(at)[0], key)
    ids = stored(index)
    deletes: list[tuple[bytes, bytes | None]] = [(key, None), (index, None)]
    if ids is not None:
        deletes += [(COMMAND_PREFIX + c, None) for c in decode_ids(ids)]
    return deletes


def encode_aggregate(states: StateFormat, aggregate: Aggregate[Any]) -> bytes:
    """An aggregate's changelog value (`streams.wire.state`)."""
    return states.encode(aggregate)


def decode_aggregate(states: StateFormat, raw: bytes) -> Aggregate[Any]:
    """Inverse of `encode_aggregate`; also reads the older version + Avro format."""
    return states.decode(raw)
