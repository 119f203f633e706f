"""An aggregate's history and its state at a point: the history index + snapshot + tail.

The index (`HistoryIndexer`) gives each event's offset, so reading an aggregate's past means
reading one partition between two known offsets, not scanning the log for its key. A state
at version N starts from the latest snapshot at or before N (when compaction has kept it)
and folds only the events after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Message, TopicPartition

from streams.client import consumer_config
from streams.config import Settings
from streams.core.commands import AggregateSnapshot
from streams.kafka.runtime import ContextRuntime, take
from streams.wire import headers as h


def read_range(settings: Settings, topic: str, partition: int, start: int, end: int) -> list[Message]:
    """Committed records of one partition with start <= offset <= end."""
    consumer = Consumer(consumer_config(settings, **{"enable.partition.eof": True}))
    try:
        consumer.assign([TopicPartition(topic, partition, start)])
        out: list[Message] = []
        while True:
            batch = take(consumer, 5000, 5.0)  # consume() would wait the full 5 s for 5000 records
            if not batch:
                raise TimeoutError(f"{topic}/{partition}: offsets {start}..{end} not readable")
            for msg in batch:
                if msg.error() is not None:
                    continue  # end of partition: the next consume returns the rest
                if msg.offset() > end:
                    return out
                out.append(msg)
                if msg.offset() == end:
                    return out
    finally:
        consumer.close()


@dataclass(frozen=True)
class PointInTime:
    """An aggregate's state at `version`, and how it was obtained."""

    version: int
    state: Any
    from_snapshot: int
    events_read: int


def decode_events(
    runtime: ContextRuntime, records: list[Message], key: bytes
) -> list[tuple[int, Any, Message]]:
    """(aggregate_version, event, record) of the records holding `key`."""
    out = []
    for msg in records:
        if msg.key() == key:
            version = int(h.as_dict(msg.headers())[h.AGGREGATE_VERSION])
            out.append((version, runtime.codec.decode(msg.value()).message, msg))
    return out


def state_at(
    settings: Settings,
    runtime: ContextRuntime,
    aggregate_id: str,
    partition: int,
    offsets: dict[int, int],
    version: int,
    snapshot: tuple[int, int] | None,
) -> PointInTime:
    """The fold of the aggregate's events 1..version, from a snapshot when one is usable.

    `offsets` maps each version to its offset in `<ctx>.events`; `snapshot` is
    (snapshot version, offset in `<ctx>.snapshots`) from the index, or None.
    """
    context = runtime.context
    state, base, start = context.initial_state, 0, offsets[1]
    if snapshot is not None:
        loaded = _load_snapshot(settings, runtime, aggregate_id, partition, snapshot)
        if loaded is not None:
            state = runtime.codec.decode(loaded.state).message
            base, start = loaded.version, loaded.event_offset + 1
    if base == version:
        return PointInTime(version, state, base, 0)
    records = read_range(settings, runtime.topics.events, partition, start, offsets[version])
    events = decode_events(runtime, records, aggregate_id.encode())
    for event_version, event, _ in events:
        if base < event_version <= version:
            state = context.evolve(state, event)
    return PointInTime(version, state, base, len(events))


def _load_snapshot(
    settings: Settings, runtime: ContextRuntime, aggregate_id: str, partition: int, snapshot: tuple[int, int]
) -> AggregateSnapshot | None:
    version, offset = snapshot
    try:
        records = read_range(settings, runtime.topics.snapshots, partition, offset, offset)
    except TimeoutError:
        return None
    for msg in records:
        if msg.offset() == offset and msg.key() == aggregate_id.encode() and msg.value() is not None:
            loaded: AggregateSnapshot = runtime.codec.decode(msg.value()).message
            if loaded.version == version:
                return loaded
    return None  # compacted away: the caller folds from the first event
