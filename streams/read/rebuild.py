"""Aggregate state from the event log alone: `streams rebuild` and `streams verify`.

`rebuild` folds `<ctx>.events` and writes every aggregate (and, for accepted commands, their
dedupe results) to the state changelog in one transaction. Run it while no worker runs that
context: a worker restores its RocksDB from that changelog. Rejected commands' results are
not in the log, so their dedupe entries cannot be rebuilt (a repeated rejected command id is
decided again). `verify` compares the changelog (what the table restores from) with the fold.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from streams.client import consumer_config
from streams.config import Settings
from streams.core.commands import ACCEPTED, Aggregate, AggregateSnapshot, CommandResult
from streams.kafka.runtime import ContextRuntime, ensure_topics, take, watermarks
from streams.kafka.store import AGGREGATE_PREFIX, COMMAND_PREFIX
from streams.wire import headers as h
from streams.wire.topics import TopicSpec
from streams.write.processor import changelog_topic, decode_aggregate, encode_aggregate


def scan_partition(settings: Settings, topic: str, partition: int, start: int = 0) -> list[Any]:
    """Committed records of one partition from `start` to its current end."""
    consumer = Consumer(consumer_config(settings, **{"enable.partition.eof": True}))
    try:
        _, high = watermarks(consumer, TopicPartition(topic, partition))
        if start >= high:
            return []
        consumer.assign([TopicPartition(topic, partition, start)])
        out: list[Any] = []
        while True:
            # take(), not consume(10000, 2.0): librdkafka's consume waits out its whole timeout
            # unless 10000 records arrive, which made every scan of a small partition cost 2 s
            for msg in take(consumer, 10000, 2.0):
                if msg.error() is not None:
                    return out  # end of partition
                out.append(msg)
                if msg.offset() >= high - 1:
                    return out
    finally:
        consumer.close()


@dataclass
class _Folded:
    aggregates: dict[str, Aggregate[Any]] = field(default_factory=dict)
    commands: dict[str, CommandResult] = field(default_factory=dict)
    events: int = 0


def fold_partition(settings: Settings, runtime: ContextRuntime, partition: int) -> _Folded:
    """Every aggregate of one events partition, and the accepted commands that built them."""
    folded = _Folded()
    context = runtime.context
    for msg in scan_partition(settings, runtime.topics.events, partition):
        aggregate_id = msg.key().decode()
        meta = h.as_dict(msg.headers())
        version = int(meta[h.AGGREGATE_VERSION])
        event = runtime.codec.decode(msg.value()).message
        current = folded.aggregates.get(aggregate_id) or Aggregate(0, context.initial_state)
        folded.aggregates[aggregate_id] = Aggregate(version, context.evolve(current.state, event))
        folded.events += 1
        command_id = meta.get(h.COMMAND_ID, "")
        if command_id:
            result = folded.commands.get(command_id) or CommandResult(
                command_id=command_id,
                aggregate_id=aggregate_id,
                command_type="",  # not in the event headers
                status=ACCEPTED,
                aggregate_version=version,
                event_partition=partition,
                processed_at=meta.get(h.OCCURRED_AT, ""),
            )
            folded.commands[command_id] = CommandResult(
                **{
                    **result.__dict__,
                    "aggregate_version": version,
                    "event_types": (*result.event_types, meta.get(h.EVENT_TYPE, "")),
                    "event_offsets": (*result.event_offsets, msg.offset()),
                }
            )
    return folded


@dataclass(frozen=True)
class RebuildReport:
    """What `rebuild` wrote."""

    aggregates: int
    commands: int
    events: int
    seconds: float


def rebuild(settings: Settings, runtime: ContextRuntime) -> RebuildReport:
    """Write the fold of the log to the state changelog (one transaction). No worker may run."""
    started = time.perf_counter()
    topic = changelog_topic(runtime)
    ensure_topics(settings, [TopicSpec(topic, settings.partitions, {"cleanup.policy": "compact"})])
    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap,
            "transactional.id": f"{settings.app_id}.rebuild.{uuid.uuid4()}",
            "linger.ms": 20,
            "compression.type": "lz4",
        }
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    totals = [0, 0, 0]
    for partition in range(settings.partitions):
        folded = fold_partition(settings, runtime, partition)
        for aggregate_id, aggregate in folded.aggregates.items():
            value = encode_aggregate(runtime, aggregate)
            producer.produce(topic, value, AGGREGATE_PREFIX + aggregate_id.encode(), partition=partition)
            producer.poll(0)
        for command_id, result in folded.commands.items():
            value = runtime.codec.encode(result)
            producer.produce(topic, value, COMMAND_PREFIX + command_id.encode(), partition=partition)
            producer.poll(0)
        totals[0] += len(folded.aggregates)
        totals[1] += len(folded.commands)
        totals[2] += folded.events
    producer.commit_transaction(120)
    return RebuildReport(totals[0], totals[1], totals[2], time.perf_counter() - started)


@dataclass(frozen=True)
class Mismatch:
    """An aggregate whose table state differs from the fold of its events."""

    aggregate_id: str
    table_version: int | None
    log_version: int | None
    detail: str


def verify(settings: Settings, runtime: ContextRuntime) -> tuple[int, list[Mismatch]]:
    """(aggregates checked, mismatches) between the state changelog and the fold of the log."""
    topic = changelog_topic(runtime)
    checked = 0
    mismatches: list[Mismatch] = []
    for partition in range(settings.partitions):
        folded = fold_partition(settings, runtime, partition).aggregates
        table: dict[str, Aggregate[Any]] = {}
        for msg in scan_partition(settings, topic, partition):
            key = msg.key() or b""
            if key.startswith(AGGREGATE_PREFIX):
                aggregate_id = key[len(AGGREGATE_PREFIX) :].decode()
                if msg.value() is None:
                    table.pop(aggregate_id, None)
                else:
                    table[aggregate_id] = decode_aggregate(runtime, msg.value())
        for aggregate_id in sorted(set(folded) | set(table)):
            checked += 1
            a, b = table.get(aggregate_id), folded.get(aggregate_id)
            if a == b:
                continue
            detail = (
                "missing in the table" if a is None else "not in the log" if b is None else "state differs"
            )
            mismatches.append(
                Mismatch(aggregate_id, a.version if a else None, b.version if b else None, detail)
            )
    return checked, mismatches


@dataclass(frozen=True)
class AggregateRebuild:
    """One aggregate rebuilt, and what it cost."""

    aggregate: Aggregate[Any]
    snapshot_version: int
    events_folded: int
    records_read: int
    seconds: float


def rebuild_aggregate(
    settings: Settings, runtime: ContextRuntime, aggregate_id: str, *, use_snapshot: bool = True
) -> AggregateRebuild:
    """One aggregate from its latest snapshot plus the events after it (or from offset 0)."""
    from streams.read.projector import partition_for

    started = time.perf_counter()
    key = aggregate_id.encode()
    partition = partition_for(key, settings.partitions)
    state, base, start, read = runtime.context.initial_state, 0, 0, 0
    if use_snapshot:
        latest = None
        records = scan_partition(settings, runtime.topics.snapshots, partition)
        read += len(records)
        for msg in records:
            if msg.key() == key and msg.value() is not None:
                latest = msg.value()
        if latest is not None:
            snapshot: AggregateSnapshot = runtime.codec.decode(latest).message
            state = runtime.codec.decode(snapshot.state).message
            base, start = snapshot.version, snapshot.event_offset + 1
    version, folded = base, 0
    records = scan_partition(settings, runtime.topics.events, partition, start)
    read += len(records)
    for msg in records:
        if msg.key() != key:
            continue
        event_version = int(h.as_dict(msg.headers())[h.AGGREGATE_VERSION])
        if event_version <= version:
            continue
        state = runtime.context.evolve(state, runtime.codec.decode(msg.value()).message)
        version, folded = event_version, folded + 1
    return AggregateRebuild(Aggregate(version, state), base, folded, read, time.perf_counter() - started)
