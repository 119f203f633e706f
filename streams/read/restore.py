"""Reading a stage's compacted output back: how a new owner of a view partition starts warm.

A projector publishes every document it changes to the compacted view topic, on the partition of
its input, each record carrying the input position its batch reached (`view_position`). The
latest record of every key is therefore the document's state at that point, and the partition's
last record says from which input offset to go on. A new owner reads the partition once, keeps
the latest value of each key, and folds only the events after that offset. (Kafka Streams
restores a store from its changelog the same way; here the view topic is the changelog.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice

from streams.config import Settings
from streams.kafka.readers import PartitionReader, read_partition
from streams.kafka.store import PartitionStore
from streams.wire import headers as h

CHUNK = 10_000
"""Records read, de-duplicated by key and written to the store at a time."""


def last_position(settings: Settings, topic: str, partition: int) -> int | None:
    """The input position on the partition's last record (None: empty, or written before
    records carried positions, so it cannot be restored from)."""
    with PartitionReader(settings, topic, partition) as reader:
        high = reader.stop
    if high <= 0:
        return None
    last = read_partition(settings, topic, partition, high - 1, high)
    if not last:
        return None
    found = h.pick(last[-1].headers(), frozenset({h.VIEW_POSITION})).get(h.VIEW_POSITION)
    return int(found) if found else None


@dataclass(frozen=True)
class Chunk:
    """Up to CHUNK records of a partition: the latest value of each key among them (None: a
    tombstone), and how many records they were."""

    values: dict[bytes, bytes | None]
    records: int


def latest_values(settings: Settings, topic: str, partition: int, stop: int | None = None) -> Iterator[Chunk]:
    """The partition up to `stop` (default: its end) in chunks. A later chunk overrides an
    earlier one, so applying them in order leaves the latest value of every key."""
    with PartitionReader(settings, topic, partition, 0, stop) as reader:
        for batch in reader.batches(CHUNK):
            values: dict[bytes, bytes | None] = {}
            for msg in batch:
                values[msg.key() or b""] = msg.value()
            yield Chunk(values, len(batch))


STAGING = b"r:"
"""Where a restore puts the raw records before converting them (no reader looks there)."""


def restore_partition(
    settings: Settings,
    topic: str,
    partition: int,
    store: PartitionStore,
    convert: Callable[[bytes, bytes], tuple[bytes, bytes]],
) -> tuple[int, int]:
    """Copy the latest value of every key of a compacted partition into `store`, converted by
    `convert(key, value) -> (store key, store value)`; (keys written, records read).

    Two passes, so that each key is converted once however many records it has in the topic
    (before the log cleaner has compacted them): the raw values are staged in the store first,
    a tombstone deleting its key's, then every staged value is converted and the staging key
    removed, 10,000 at a time."""
    while leftover := list(islice(store.scan(STAGING), CHUNK)):  # of a restore cut short
        store.write(dict.fromkeys((key for key, _ in leftover), None), {})
    records = 0
    for chunk in latest_values(settings, topic, partition):
        records += chunk.records
        store.write({STAGING + key: value for key, value in chunk.values.items()}, {})
    keys = 0
    start: bytes | None = None
    while True:
        staged = list(islice(store.scan(STAGING, start), CHUNK))
        if not staged:
            return keys, records
        writes: dict[bytes, bytes | None] = {}
        for staged_key, value in staged:
            target, converted = convert(staged_key[len(STAGING) :], value)
            writes[target] = converted
            writes[staged_key] = None
        store.write(writes, {})
        keys += len(staged)
        start = staged[-1][0] + b"\x00"
