"""What every Kafka-facing part needs for one context: its topics, catalog and codec."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.config import Settings
from streams.contexts import get_context
from streams.core.commands import AggregateSnapshot, CommandResult
from streams.core.decider import BoundedContext
from streams.core.views import ReadModelDocument, ViewVersions
from streams.wire.codec import AvroCodec, RegistryUnavailable
from streams.wire.schemas import SCHEMAS_DIR, SchemaCatalog
from streams.wire.topics import ContextTopics

FRAMEWORK_TYPES: tuple[type, ...] = (CommandResult, AggregateSnapshot, ReadModelDocument, ViewVersions)


def catalog_for(context: BoundedContext[Any]) -> SchemaCatalog:
    """Schemas of a context's messages and state, plus the framework's own records."""
    types = (*context.commands, *context.events, context.state_type, *FRAMEWORK_TYPES)
    return SchemaCatalog([SCHEMAS_DIR / context.name, SCHEMAS_DIR / "streams"], types, context.upcasters)


@dataclass(frozen=True)
class ContextRuntime:
    """A context wired to the stack: topic names and a codec with registered schemas."""

    context: BoundedContext[Any]
    topics: ContextTopics
    codec: AvroCodec

    @classmethod
    def connect(cls, settings: Settings, name: str, *, retry_for_s: float = 0.0) -> ContextRuntime:
        """Register the context's schemas, retrying with back-off while the registry is down."""
        context = get_context(name)
        catalog = catalog_for(context)
        deadline = time.monotonic() + retry_for_s
        delay = 0.5
        while True:
            try:
                codec = AvroCodec.connect(catalog, settings.registry_url)
                break
            except RegistryUnavailable:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        return cls(context, ContextTopics(name, settings.topic_prefix), codec)

    def ensure_topics(self, settings: Settings) -> None:
        """Create the context's topics when missing (existing ones are left as they are)."""
        ensure_topics(settings, self.topics.specs(settings.partitions))


def ensure_topics(settings: Settings, specs: list[Any]) -> None:
    """Create topics that do not exist yet; wait until they do."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    existing = admin.list_topics(timeout=10).topics
    missing = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config)
        for s in specs
        if s.name not in existing
    ]
    if not missing:
        return
    for topic, future in admin.create_topics(missing).items():
        try:
            future.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise RuntimeError(f"cannot create topic {topic}: {exc}") from exc


def take(consumer: Any, max_records: int, timeout: float) -> list[Any]:
    """Up to `max_records` records: waits at most `timeout` for the first, then takes what is
    already fetched without waiting (librdkafka's `consume` would wait out the whole timeout)."""
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(max_records - 1, timeout=0)]


_NOT_READY = (
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
)


def watermarks(consumer: Any, tp: TopicPartition, wait_s: float = 30.0) -> tuple[int, int]:
    """(low, high) offsets of a partition. A topic created a moment ago may not be in the
    metadata or have a leader yet: such errors are retried for `wait_s`, others raised."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0]
            if not (error.retriable() or error.code() in _NOT_READY) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def is_fatal(error: KafkaError) -> bool:
    """True when a client is unusable and must be recreated. librdkafka reports some fatal
    consumer errors (e.g. a static member fenced after a broker restart) as code `_FATAL` on a
    message, with `fatal()` false."""
    return bool(error.fatal()) or error.code() == KafkaError._FATAL
