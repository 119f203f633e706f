"""A decided batch of commands (typed records of what it will write) and the writer that produces it.

The intake (`streams.write.intake`) fills a `DecidedBatch` without touching Kafka; the
`BatchWriter` produces it inside the processor's transaction: events, results (with their
events' predicted offsets), DLQ records, snapshots and the state changelog.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from confluent_kafka import KafkaError, Message, Producer

from streams.core.commands import Aggregate, AggregateSnapshot, CommandResult
from streams.core.records import replace_record
from streams.kafka.runtime import ContextRuntime
from streams.wire import headers as h
from streams.wire.changelog import (
    AGGREGATE_PREFIX,
    COMMAND_PREFIX,
    ExpiredResults,
    encode_ids,
    encode_results,
    expiry_key,
    results_key,
)
from streams.wire.dlq import DeadLetter
from streams.write.appends import EventAppend


class PendingEvent(msgspec.Struct, frozen=True):
    """An event to append: the partition of its command, its key, Avro value and headers."""

    partition: int
    key: bytes
    value: bytes
    headers: h.Headers
    event_type: str


class PendingResult(msgspec.Struct, frozen=True):
    """A command's result, and the positions (in the batch's events) of the events it caused."""

    partition: int
    result: CommandResult
    event_indexes: tuple[int, ...] = ()


class _ChangelogRecord(msgspec.Struct, frozen=True):
    """One record of the state changelog (a tombstone: no value, the headers say what it expires)."""

    key: bytes
    value: bytes | None
    headers: list[tuple[str, bytes]] | None = None
    at: int = 0
    """Its timestamp (ms; 0: the producer's)."""


class PendingSnapshot(msgspec.Struct, frozen=True):
    """A snapshot of an aggregate at the version of the batch's event number `last_event`."""

    partition: int
    aggregate_id: str
    aggregate: Aggregate[Any]
    last_event: int


@dataclass(slots=True)
class DecidedBatch:
    """What one batch will write, kept apart from RocksDB until the transaction commits.

    Aggregates and results stay objects until the batch is produced, so an aggregate touched
    by several commands of a batch is decoded at most once and encoded once (`states`).
    """

    processed_at: str
    aggregates: dict[int, dict[bytes, Aggregate[Any]]] = field(default_factory=dict)
    """The last state of each aggregate the batch changed, by partition and key."""
    states: dict[int, dict[bytes, bytes]] = field(default_factory=dict)
    """`aggregates`, encoded for the changelog (filled once the batch is decided)."""
    events: list[PendingEvent] = field(default_factory=list)
    results: list[PendingResult] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    snapshots: list[PendingSnapshot] = field(default_factory=list)
    offsets: dict[int, int] = field(default_factory=dict)
    """The next command offset of each partition once the batch is committed."""
    timestamps: list[float] = field(default_factory=list)
    """The commands' record timestamps (seconds), for the latency metric."""
    expired: list[ExpiredResults] = field(default_factory=list)
    """Results records past the idempotency window: tombstoned in this batch's transaction."""


@dataclass(frozen=True, slots=True)
class WrittenBatch:
    """A batch in flight: its events, the store writes per partition, the changelog's end
    offset per partition (filled in as the broker acknowledges) and, when written carefully,
    the delivery errors of every record."""

    events: EventAppend
    store_writes: dict[int, dict[bytes, bytes | None]]
    changelog_end: dict[int, int]
    failures: list[KafkaError] = field(default_factory=list)


class BatchWriter:
    """Produces decided batches of one context with one producer.

    `next_event_offset` is where each events partition's next record will land (kept across
    batches by the caller); `high_watermark(partition)` is asked once per partition it lacks.
    `exactly_once`: inside a transaction only each partition's first and last event and last
    changelog record report their delivery (a failed record fails the commit anyway); a batch
    written `careful`ly reports every record, to find out which one the broker refused.
    """

    def __init__(
        self,
        producer: Producer,
        runtime: ContextRuntime,
        next_event_offset: dict[int, int],
        high_watermark: Callable[[int], int],
        *,
        exactly_once: bool,
    ) -> None:
        self.producer = producer
        self.runtime = runtime
        self.next_event_offset = next_event_offset
        self.high_watermark = high_watermark
        self.exactly_once = exactly_once

    def write(
        self, batch: DecidedBatch, wait_for_offsets: Callable[[EventAppend], None], *, careful: bool = False
    ) -> WrittenBatch:
        """Produce everything `batch` writes. `wait_for_offsets` runs after the events when the
        offsets cannot be predicted (no transaction to abort on a misprediction)."""
        topics, codec = self.runtime.topics, self.runtime.codec
        failures: list[KafkaError] = []

        def noted(err: KafkaError | None, _record: Message) -> None:
            if err is not None:
                failures.append(err)

        producer: Producer | _Reporting = _Reporting(self.producer, noted) if careful else self.producer
        events = self._produce_events(batch, careful)
        if not self.exactly_once:
            wait_for_offsets(events)
        writes: dict[int, dict[bytes, bytes | None]] = {}
        for old in batch.expired:  # first: an id expired here may be remembered again below
            writes.setdefault(old.partition, {}).update(old.store_deletes())
        for partition, encoded in batch.states.items():
            target = writes.setdefault(partition, {})
            for key, value in encoded.items():
                target[AGGREGATE_PREFIX + key] = value
        for letter in batch.dead_letters:
            producer.produce(topics.dlq, letter.value, letter.key, headers=letter.headers)
        event_offsets = events.offsets
        remembered: dict[int, dict[bytes, bytes]] = {}
        for pending in batch.results:
            result = pending.result
            if pending.event_indexes:
                offsets = tuple([event_offsets[i] for i in pending.event_indexes])
                result = replace_record(result, event_offsets=offsets, event_partition=pending.partition)
            value = codec.encode(result)
            command_id = result.command_id.encode()
            producer.produce(topics.results, value, command_id, partition=pending.partition)
            if not result.duplicate and result.aggregate_version >= 0:  # DLQ results are not kept
                remembered.setdefault(pending.partition, {})[command_id] = value
        for snap in batch.snapshots:
            snapshot = AggregateSnapshot(
                aggregate_id=snap.aggregate_id,
                aggregate_type=self.runtime.context.aggregate_type,
                version=snap.aggregate.version,
                state=codec.encode(snap.aggregate.state),
                event_partition=snap.partition,
                event_offset=event_offsets[snap.last_event],
                taken_at=batch.processed_at,
            )
            producer.produce(
                topics.snapshots, codec.encode(snapshot), snap.aggregate_id.encode(), partition=snap.partition
            )
        changelog_end: dict[int, int] = {}

        def track(err: Any, record: Message) -> None:
            if err is None:
                p = record.partition()
                changelog_end[p] = max(changelog_end.get(p, 0), record.offset() + 1)
            else:
                failures.append(err)

        # The changelog gets the expired results' tombstones, the aggregates and one record per
        # partition holding the batch's command results (stamped with the time the window counts
        # from); the store gets each result under its own key (for the look-up) and an index key.
        at_ms = int(time.time() * 1000)
        records: dict[int, list[_ChangelogRecord]] = {}
        for old in batch.expired:
            records.setdefault(old.partition, []).append(
                _ChangelogRecord(old.changelog_key, None, old.tombstone_headers())
            )
        for partition, encoded in batch.states.items():
            records.setdefault(partition, []).extend(
                _ChangelogRecord(AGGREGATE_PREFIX + key, value) for key, value in encoded.items()
            )
        for partition, results in remembered.items():
            key = results_key(batch.offsets[partition])
            records.setdefault(partition, []).append(_ChangelogRecord(key, encode_results(results), at=at_ms))
            target = writes.setdefault(partition, {})
            for command_id, value in results.items():
                target[COMMAND_PREFIX + command_id] = value
            target[expiry_key(at_ms, key)] = encode_ids(list(results))
        # The store's changelog position is its last record's offset + 1. In a transaction only
        # that record is reported: a failure of any other fails the commit.
        changelog = topics.changelog
        for partition, partition_records in records.items():
            last = len(partition_records) - 1
            for i, record in enumerate(partition_records):
                kw: dict[str, Any] = {"partition": partition}
                if record.headers:
                    kw["headers"] = record.headers
                if record.at:
                    kw["timestamp"] = record.at
                if i == last or not self.exactly_once or careful:
                    kw["on_delivery"] = track
                producer.produce(changelog, record.value, record.key, **kw)
        return WrittenBatch(events, writes, changelog_end, failures)

    def _produce_events(self, batch: DecidedBatch, careful: bool) -> EventAppend:
        """Produce the batch's events, numbered from the predicted next offset of each partition."""
        producer = self.producer
        append = EventAppend(self.next_event_offset, sparse=self.exactly_once and not careful)
        last_of = {e.partition: i for i, e in enumerate(batch.events)}
        for partition in last_of.keys() - self.next_event_offset.keys():
            self.next_event_offset[partition] = self.high_watermark(partition)
        events_topic = self.runtime.topics.events
        on_event = append.on_delivery
        for i, event in enumerate(batch.events):
            partition = event.partition
            if append.number(partition, last=last_of[partition] == i):
                producer.produce(
                    events_topic, event.value, event.key, partition=partition, headers=event.headers,
                    on_delivery=on_event,
                )  # fmt: skip
            else:
                producer.produce(
                    events_topic, event.value, event.key, partition=partition, headers=event.headers
                )
        return append


class _Reporting:
    """A producer whose records report their delivery to `report` unless they have a callback of
    their own (a batch written carefully)."""

    def __init__(
        self, producer: Producer, report: Callable[[KafkaError | None, Message], None] | None
    ) -> None:
        self._producer = producer
        self._report = report

    def produce(self, topic: str, value: bytes | None, key: bytes | None, **kw: Any) -> None:
        if self._report is not None and "on_delivery" not in kw:
            kw["on_delivery"] = self._report
        self._producer.produce(topic, value, key, **kw)
