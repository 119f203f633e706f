"""What every Kafka-facing part needs for one context: its topics, group names and codec."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import NewTopic

from streams.config import Settings
from streams.core.decider import BoundedContext
from streams.kafka.clients import admin
from streams.wire.codec import AvroCodec, RegistryUnavailable
from streams.wire.limits import CommandLimits
from streams.wire.schemas import catalog_for
from streams.wire.state import StateFormat
from streams.wire.topics import ContextTopics, GroupNames, TopicSpec


@dataclass(frozen=True)
class ContextRuntime:
    """A context wired to the stack: topic and group names, and a codec with registered schemas."""

    context: BoundedContext[Any]
    topics: ContextTopics
    groups: GroupNames
    codec: AvroCodec
    limits: CommandLimits
    """The string limits of the context's commands (from their schemas)."""
    states: StateFormat
    """The internal format of the context's aggregates (changelog, RocksDB)."""

    @classmethod
    def connect(
        cls, settings: Settings, context: BoundedContext[Any], *, retry_for_s: float = 0.0
    ) -> ContextRuntime:
        """Register the context's schemas, retrying with back-off while the registry is down."""
        catalog = catalog_for(context)
        deadline = time.monotonic() + retry_for_s
        delay = 0.5
        while True:
            try:
                codec = AvroCodec.connect(catalog, settings.registry_url, settings.topic_prefix)
                break
            except RegistryUnavailable:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
        topics = ContextTopics(context.name, settings.topic_prefix, settings.max_message_bytes)
        groups = GroupNames(settings.app_id, settings.topic_prefix, context.name)
        limits = CommandLimits(catalog, list(context.command_names))
        return cls(context, topics, groups, codec, limits, StateFormat(context.state_type, codec))

    @classmethod
    def offline(
        cls, context: BoundedContext[Any], *, prefix: str = "", app_id: str = "streams"
    ) -> ContextRuntime:
        """A runtime without a registry (locally assigned schema ids): for tests and tools."""
        catalog = catalog_for(context)
        topics = ContextTopics(context.name, prefix)
        limits = CommandLimits(catalog, list(context.command_names))
        codec = AvroCodec.offline(catalog)
        groups = GroupNames(app_id, prefix, context.name)
        return cls(context, topics, groups, codec, limits, StateFormat(context.state_type, codec))

    def ensure_topics(self, settings: Settings) -> None:
        """Create the context's topics when missing (existing ones are left as they are)."""
        ensure_topics(settings, self.topics.specs(settings.partitions))


def ensure_topics(settings: Settings, specs: list[TopicSpec]) -> None:
    """Create topics that do not exist yet; wait until they do."""
    client = admin(settings)
    existing = client.list_topics(timeout=10).topics
    missing = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config)
        for s in specs
        if s.name not in existing
    ]
    if not missing:
        return
    for topic, future in client.create_topics(missing).items():
        try:
            future.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise RuntimeError(f"cannot create topic {topic}: {exc}") from exc
    # a created topic is usable once every partition has a leader: producing before that races
    # the controller (worse on a topic re-created under a name that was just deleted)
    deadline = time.monotonic() + 30
    for spec in missing:
        while not _led(client, spec.topic, spec.num_partitions) and time.monotonic() < deadline:
            time.sleep(0.1)


def _led(client: Any, topic: str, partitions: int) -> bool:
    """Whether the metadata shows `topic` with `partitions` partitions, each with a leader."""
    found = client.list_topics(topic, timeout=10).topics.get(topic)
    if found is None or found.error is not None or len(found.partitions) < partitions:
        return False
    return all(p.leader >= 0 and p.error is None for p in found.partitions.values())


class Runtimes:
    """One `ContextRuntime` per context of a worker, shared by its stages and endpoints, and
    connected on first use (blocking: it waits up to `retry_for_s` for the registry)."""

    def __init__(
        self, settings: Settings, contexts: Mapping[str, BoundedContext[Any]], *, retry_for_s: float = 300.0
    ) -> None:
        self.settings = settings
        self.contexts = dict(contexts)
        self.retry_for_s = retry_for_s
        self._runtimes: dict[str, ContextRuntime] = {}
        self._lock = threading.Lock()

    def __contains__(self, name: object) -> bool:
        return name in self.contexts

    def get(self, name: str) -> ContextRuntime:
        """The runtime of context `name` (KeyError when this worker does not run it)."""
        context = self.contexts[name]
        with self._lock:
            runtime = self._runtimes.get(name)
            if runtime is None:
                runtime = ContextRuntime.connect(self.settings, context, retry_for_s=self.retry_for_s)
                self._runtimes[name] = runtime
            return runtime

    def connected(self, name: str) -> ContextRuntime | None:
        """The runtime of `name` if it is connected already (never blocks)."""
        return self._runtimes.get(name)
