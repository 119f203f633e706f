"""Reading an aggregate back: by folding the event log (the seed's StateRebuilder) or from the
handler's state changelog. Kafka has no per-key index, so both scan the partitions."""

from __future__ import annotations

from typing import Any

from streams.client import read_topic
from streams.config import Settings
from streams.core.commands import Aggregate
from streams.kafka.runtime import ContextRuntime
from streams.kafka.store import AGGREGATE_PREFIX
from streams.wire import headers as h
from streams.write.processor import changelog_topic, decode_aggregate


def events_of(settings: Settings, runtime: ContextRuntime, aggregate_id: str) -> list[tuple[int, Any]]:
    """(aggregate_version, event) of one aggregate, in log order."""
    key = aggregate_id.encode()
    out = []
    for msg in read_topic(settings, runtime.topics.events, idle_timeout=1.0):
        if msg.key() == key:
            version = int(h.as_dict(msg.headers())[h.AGGREGATE_VERSION])
            out.append((version, runtime.codec.decode(msg.value()).message))
    return out


def aggregate_from_log(settings: Settings, runtime: ContextRuntime, aggregate_id: str) -> Aggregate[Any]:
    """The aggregate as the fold of its events."""
    events = events_of(settings, runtime, aggregate_id)
    state = runtime.context.fold([e for _, e in events])
    return Aggregate(events[-1][0] if events else 0, state)


def aggregate_from_table(
    settings: Settings, runtime: ContextRuntime, aggregate_id: str
) -> Aggregate[Any] | None:
    """The handler table's latest committed value for the aggregate, if any."""
    key = AGGREGATE_PREFIX + aggregate_id.encode()
    latest = None
    for msg in read_topic(settings, changelog_topic(runtime), idle_timeout=1.0):
        if msg.key() == key:
            latest = msg.value()
    return None if latest is None else decode_aggregate(runtime, latest)
