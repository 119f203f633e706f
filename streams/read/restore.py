"""Reading a stage's compacted output back: how a new owner of a view partition starts warm.

A projector publishes every document it changes to the compacted view topic, on the partition of
its input, each record carrying the input position its batch reached (`view_position`). The
latest record of every key is therefore the document's state at that point, and the partition's
last record says from which input offset to go on. A new owner reads the partition once, keeps
the latest value of each key, and folds only the events after that offset. (Kafka Streams
restores a store from its changelog the same way; here the view topic is the changelog.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from streams.config import Settings
from streams.kafka.readers import PartitionReader, read_partition
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
