"""The one fold of the log: event records, in log order, into aggregates (the seed's StateRebuilder);
and the aggregates the state changelog holds, which the fold is checked against.

Time travel, `streams state`, `streams rebuild` / `verify` and single-aggregate rebuilds all read
records of `<ctx>.events` and fold them here. An event is folded only when it is newer than the
aggregate's version (and not past an optional `up_to`), so a fold may start from a snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Message

from streams.config import Settings
from streams.core.commands import Aggregate
from streams.core.decider import BoundedContext
from streams.kafka.readers import read_partition
from streams.kafka.runtime import ContextRuntime
from streams.wire import headers as h
from streams.wire.changelog import AGGREGATE_PREFIX, decode_aggregate
from streams.wire.topics import partition_for

_VERSION_HEADER = frozenset({h.AGGREGATE_VERSION})


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """An event as the log holds it: its aggregate, version, decoded body and record."""

    aggregate_id: str
    version: int
    event: Any
    record: Message


def logged_events(
    runtime: ContextRuntime, records: Iterable[Message], *, only: bytes | None = None
) -> list[LoggedEvent]:
    """The events among `records` of `<ctx>.events`, decoded (only those keyed `only`, if given)."""
    out = []
    for msg in records:
        key = msg.key() or b""
        if only is not None and key != only:
            continue
        version = int(h.pick(msg.headers(), _VERSION_HEADER)[h.AGGREGATE_VERSION])
        out.append(LoggedEvent(key.decode(), version, runtime.codec.decode(msg.value()).message, msg))
    return out


class LogFold:
    """Aggregates folded from their events; `start` holds states to fold on from (snapshots)."""

    def __init__(
        self,
        context: BoundedContext[Any],
        start: Mapping[str, Aggregate[Any]] | None = None,
        up_to: int | None = None,
    ) -> None:
        self.context = context
        self.aggregates: dict[str, Aggregate[Any]] = dict(start or {})
        self.up_to = up_to
        self.folded = 0

    def aggregate(self, aggregate_id: str) -> Aggregate[Any]:
        """The aggregate as folded so far (version 0 and the initial state: no event yet)."""
        return self.aggregates.get(aggregate_id) or Aggregate(0, self.context.initial_state)

    def add(self, event: LoggedEvent) -> bool:
        """Fold one event in; False when it is not newer than the aggregate (or past `up_to`)."""
        current = self.aggregate(event.aggregate_id)
        if event.version <= current.version or (self.up_to is not None and event.version > self.up_to):
            return False
        state = self.context.evolve(current.state, event.event)
        self.aggregates[event.aggregate_id] = Aggregate(event.version, state)
        self.folded += 1
        return True

    def add_all(self, events: Iterable[LoggedEvent]) -> LogFold:
        """Fold every event in; returns self."""
        for event in events:
            self.add(event)
        return self


def events_of(settings: Settings, runtime: ContextRuntime, aggregate_id: str) -> list[LoggedEvent]:
    """Every event of one aggregate, in log order (its whole partition is read)."""
    key = aggregate_id.encode()
    partition = partition_for(key, settings.partitions)
    return logged_events(runtime, read_partition(settings, runtime.topics.events, partition), only=key)


def aggregate_from_log(settings: Settings, runtime: ContextRuntime, aggregate_id: str) -> Aggregate[Any]:
    """The aggregate as the fold of its events."""
    events = events_of(settings, runtime, aggregate_id)
    return LogFold(runtime.context).add_all(events).aggregate(aggregate_id)


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
