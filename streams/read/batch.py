"""What one read-side batch writes: store keys, records to produce, positions.

A stage folds a batch of input records into a `Batch`; once the batch's output is acknowledged,
the stores take its writes and positions in one atomic write (`streams.read.stage`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
from confluent_kafka import Message

from streams.core.views import EventMeta
from streams.kafka.store import PartitionStore
from streams.wire import headers as h
from streams.wire.dlq import DeadLetter
from streams.wire.topics import DEFAULT_MAX_MESSAGE_BYTES, record_size


class Output(msgspec.Struct, frozen=True):
    """A record a batch produces once it is complete (`partition` None: the partitioner's), and
    the input records it comes from."""

    topic: str
    partition: int | None
    key: bytes | None
    value: bytes | None
    headers: h.Headers
    timestamp: int = 0
    sources: tuple[Message, ...] = ()


@dataclass
class Batch:
    """What one batch writes: store keys per partition, records to produce, positions."""

    stores: dict[int, PartitionStore]
    limit: int = DEFAULT_MAX_MESSAGE_BYTES
    """The record limit of the stage's output topics."""
    writes: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    positions: dict[int, dict[str, int]] = field(default_factory=dict)
    out: list[Output] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    documents: dict[tuple[int, bytes], Any] = field(default_factory=dict)
    """A view's documents as this batch left them, by (partition, key): written and published
    once per batch however many of its events touch them."""
    applied: dict[tuple[int, bytes], list[tuple[Message, Any, EventMeta]]] = field(default_factory=dict)
    """The events folded into each of those documents in this batch (record, event, metadata)."""

    def get(self, partition: int, key: bytes) -> bytes | None:
        """A store value as this batch left it."""
        pending = self.writes.get(partition, {})
        if key in pending:
            return pending[key]
        return self.stores[partition].get(key)

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Write (None: delete) a store key when the batch completes."""
        self.writes.setdefault(partition, {})[key] = value

    def produce(
        self,
        topic: str,
        partition: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: h.Headers | None = None,
        timestamp: int = 0,
        sources: tuple[Message, ...] = (),
    ) -> None:
        """Produce a record when the batch completes."""
        self.out.append(Output(topic, partition, key, value, headers or [], timestamp, sources))

    def fits(self, key: bytes | None, value: bytes | None, headers: h.Headers | None = None) -> int:
        """0 when such a record fits the output topics' limit, else its size."""
        size = record_size(key, value, headers)
        return 0 if size <= self.limit else size

    def dead_letter(self, topic: str, letter: DeadLetter) -> None:
        """Produce a DLQ record when the batch completes."""
        self.produce(topic, None, letter.key, letter.value, letter.headers)


@dataclass(frozen=True)
class Restored:
    """What a partition's restore from a compacted topic brought back."""

    topic: str
    """The compacted topic restored from."""
    keys: int
    records: int
    position: int
    """The input offset the stage goes on from."""
