"""The write side's state changelog: its record format, restoring a partition from it, reading it.

Keys are `a:<aggregate id>` (value: the aggregate in the internal state format,
`streams.wire.state`) and `r:<next command offset>` (value: MessagePack of the `[command id,
first CommandResult in Avro]` pairs of one batch of one partition, for dedupe: one record per
batch rather than one per command). Changelogs written before hold `c:<command id>` records with
one result each (`streams rebuild` still writes those); both restore into the store's
`c:<command id>` keys. The topic is compacted; RocksDB mirrors it and restores from it. Tools
read it through this module's functions only (the read side never reaches into the write loop).
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import msgspec

from streams.config import Settings
from streams.core.commands import Aggregate
from streams.kafka.readers import PartitionReader, read_partition
from streams.kafka.runtime import ContextRuntime
from streams.kafka.store import PartitionStore
from streams.wire.state import StateFormat
from streams.wire.topics import partition_for

log = logging.getLogger(__name__)

AGGREGATE_PREFIX = b"a:"
COMMAND_PREFIX = b"c:"
RESULTS_PREFIX = b"r:"
_VERSION = struct.Struct(">q")
_RESULTS_ENCODER = msgspec.msgpack.Encoder()
_RESULTS_DECODER = msgspec.msgpack.Decoder(list[tuple[bytes, bytes]])


def results_key(next_offset: int) -> bytes:
    """The changelog key of a batch's results: unique per partition, as offsets only grow."""
    return RESULTS_PREFIX + _VERSION.pack(next_offset)


def encode_results(results: dict[bytes, bytes]) -> bytes:
    """A batch's first results by command id, as one changelog value."""
    return _RESULTS_ENCODER.encode(list(results.items()))


def store_writes(key: bytes, value: bytes | None) -> list[tuple[bytes, bytes | None]]:
    """What one changelog record becomes in the store (a batch's results: one key each)."""
    if key.startswith(RESULTS_PREFIX) and value is not None:
        return [
            (COMMAND_PREFIX + command_id, result) for command_id, result in _RESULTS_DECODER.decode(value)
        ]
    return [(key, value)]


_RESTORE_BATCH = 10000


def encode_aggregate(states: StateFormat, aggregate: Aggregate[Any]) -> bytes:
    """An aggregate's changelog value (`streams.wire.state`)."""
    return states.encode(aggregate)


def decode_aggregate(states: StateFormat, raw: bytes) -> Aggregate[Any]:
    """Inverse of `encode_aggregate`; also reads the older version + Avro format."""
    return states.decode(raw)


def restore(settings: Settings, store: PartitionStore, topic: str, partition: int) -> None:
    """Bring a partition's store up to the end of its changelog, from the store's checkpoint."""
    with PartitionReader(settings, topic, partition, store.position(topic)) as reader:
        if reader.start >= reader.stop:
            return
        writes: dict[bytes, bytes | None] = {}
        for batch in reader.batches(_RESTORE_BATCH):
            for msg in batch:
                writes.update(store_writes(msg.key(), msg.value()))
            if len(writes) >= _RESTORE_BATCH:
                store.write(writes, {topic: reader.position})
                writes = {}
        # the last committed offset may be a transaction marker: resume after it next time
        store.write(writes, {topic: reader.position})
        log.info("%s[%d] restored from offset %d to %d", topic, partition, reader.start, reader.position)


def changelog_aggregates(
    settings: Settings, runtime: ContextRuntime, partition: int
) -> dict[str, Aggregate[Any]]:
    """Every aggregate of one changelog partition, as a restoring store would hold it."""
    table: dict[str, Aggregate[Any]] = {}
    for msg in read_partition(settings, runtime.topics.changelog, partition):
        key = msg.key() or b""
        if key.startswith(AGGREGATE_PREFIX):
            aggregate_id = key[len(AGGREGATE_PREFIX) :].decode()
            if msg.value() is None:
                table.pop(aggregate_id, None)
            else:
                table[aggregate_id] = decode_aggregate(runtime.states, msg.value())
    return table


def aggregate_from_changelog(
    settings: Settings, runtime: ContextRuntime, aggregate_id: str
) -> Aggregate[Any] | None:
    """The aggregate's latest committed state in the changelog (what a restoring worker gets)."""
    key = AGGREGATE_PREFIX + aggregate_id.encode()
    latest = None
    partition = partition_for(aggregate_id.encode(), settings.partitions)
    for msg in read_partition(settings, runtime.topics.changelog, partition):
        if msg.key() == key:
            latest = msg.value()
    return None if latest is None else decode_aggregate(runtime.states, latest)
