"""Aggregate state from the event log alone: `streams rebuild` and `streams verify`.

`rebuild` folds `<ctx>.events` and writes every aggregate (and, for accepted commands, their
dedupe results) to the state changelog in one transaction. Run it while no worker runs that
context: a worker restores its RocksDB from that changelog. Rejected commands' results are
not in the log, so their dedupe entries cannot be rebuilt (a repeated rejected command id is
decided again). `verify` compares the changelog (what the table restores from) with the fold.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from streams.config import Settings
from streams.core.commands import ACCEPTED, Aggregate, AggregateSnapshot, CommandResult
from streams.core.records import replace_record
from streams.kafka import clients
from streams.kafka.fold import LogFold, changelog_aggregates, logged_events
from streams.kafka.readers import read_partition, wait_until_readable
from streams.kafka.runtime import ContextRuntime, ensure_topics
from streams.wire import headers as h
from streams.wire.changelog import AGGREGATE_PREFIX, COMMAND_PREFIX, encode_aggregate
from streams.wire.topics import partition_for

log = logging.getLogger(__name__)


@dataclass
class _Folded:
    aggregates: dict[str, Aggregate[Any]] = field(default_factory=dict)
    commands: dict[str, CommandResult] = field(default_factory=dict)
    events: int = 0


def fold_partition(settings: Settings, runtime: ContextRuntime, partition: int) -> _Folded:
    """Every aggregate of one events partition, and the accepted commands that built them."""
    fold = LogFold(runtime.context)
    commands: dict[str, CommandResult] = {}
    events = logged_events(runtime, read_partition(settings, runtime.topics.events, partition))
    for logged in events:
        fold.add(logged)
        meta = h.as_dict(logged.record.headers())
        command_id = meta.get(h.COMMAND_ID, "")
        if command_id:
            result = commands.get(command_id) or CommandResult(
                command_id=command_id,
                aggregate_id=logged.aggregate_id,
                command_type="",  # not in the event headers
                status=ACCEPTED,
                aggregate_version=logged.version,
                event_partition=partition,
                processed_at=meta.get(h.OCCURRED_AT, ""),
            )
            commands[command_id] = replace_record(
                result,
                aggregate_version=logged.version,
                event_types=(*result.event_types, meta.get(h.EVENT_TYPE, "")),
                event_offsets=(*result.event_offsets, logged.record.offset()),
            )
    return _Folded(fold.aggregates, commands, len(events))


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
    topic = runtime.topics.changelog
    ensure_topics(settings, [runtime.topics.changelog_spec(settings.partitions)])
    producer = clients.transactional_producer(
        settings, runtime.groups.rebuild_transactional_id(str(uuid.uuid4()))
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    totals = [0, 0, 0]
    for partition in range(settings.partitions):
        folded = fold_partition(settings, runtime, partition)
        for aggregate_id, aggregate in folded.aggregates.items():
            value = encode_aggregate(runtime.states, aggregate)
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
    if not wait_until_readable(settings, topic, range(settings.partitions)):
        log.warning("%s: the rebuilt table is not readable yet (another transaction is open?)", topic)
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
    checked = 0
    mismatches: list[Mismatch] = []
    for partition in range(settings.partitions):
        folded = fold_partition(settings, runtime, partition).aggregates
        table = changelog_aggregates(settings, runtime, partition)
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
    started = time.perf_counter()
    key = aggregate_id.encode()
    partition = partition_for(key, settings.partitions)
    base, start, read = Aggregate(0, runtime.context.initial_state), 0, 0
    if use_snapshot:
        latest = None
        records = read_partition(settings, runtime.topics.snapshots, partition)
        read += len(records)
        for msg in records:
            if msg.key() == key and msg.value() is not None:
                latest = msg.value()
        if latest is not None:
            snapshot: AggregateSnapshot = runtime.codec.decode(latest).message
            base = Aggregate(snapshot.version, runtime.codec.decode(snapshot.state).message)
            start = snapshot.event_offset + 1
    records = read_partition(settings, runtime.topics.events, partition, start)
    read += len(records)
    fold = LogFold(runtime.context, {aggregate_id: base}).add_all(logged_events(runtime, records, only=key))
    seconds = time.perf_counter() - started
    return AggregateRebuild(fold.aggregate(aggregate_id), base.version, fold.folded, read, seconds)
