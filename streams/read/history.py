"""An aggregate's history and its state at a point: the history index + snapshot + tail.

The index (`HistoryIndexer`) gives each event's offset, so reading an aggregate's past means
reading exactly those records of one partition (`read_offsets`), not scanning the log for its
key nor holding the other aggregates' records in between. A state at version N starts from the
latest snapshot at or before N (when compaction has kept it) and folds only the events after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import Message

from streams.config import Settings
from streams.core.commands import Aggregate, AggregateSnapshot
from streams.kafka.readers import read_offsets, read_partition
from streams.kafka.runtime import ContextRuntime
from streams.read.fold import LogFold, logged_events


def read_range(settings: Settings, topic: str, partition: int, start: int, end: int) -> list[Message]:
    """Committed records of one partition with start <= offset <= end."""
    return read_partition(settings, topic, partition, start, end + 1)


@dataclass(frozen=True)
class PointInTime:
    """An aggregate's state at `version`, and how it was obtained."""

    version: int
    state: Any
    from_snapshot: int
    events_read: int


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
    base, start = Aggregate(0, runtime.context.initial_state), offsets[1]
    if snapshot is not None:
        loaded = _load_snapshot(settings, runtime, aggregate_id, partition, snapshot)
        if loaded is not None:
            base = Aggregate(loaded.version, runtime.codec.decode(loaded.state).message)
            start = loaded.event_offset + 1
    if base.version == version:
        return PointInTime(version, base.state, base.version, 0)
    wanted = [offset for v, offset in offsets.items() if base.version < v <= version and offset >= start]
    records = read_offsets(settings, runtime.topics.events, partition, wanted)
    events = logged_events(runtime, records, only=aggregate_id.encode())
    fold = LogFold(runtime.context, {aggregate_id: base}, up_to=version).add_all(events)
    return PointInTime(version, fold.aggregate(aggregate_id).state, base.version, len(events))


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
