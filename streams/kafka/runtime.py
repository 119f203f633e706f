"""What every Kafka-facing part needs for one context: its topics, group names and codec."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource, NewTopic, ResourceType

from streams import metrics
from streams.config import Settings
from streams.core.decider import BoundedContext
from streams.kafka.clients import admin
from streams.privacy.deployment import keyring_for
from streams.wire.codec import AvroCodec, RegistryUnavailable
from streams.wire.limits import CommandLimits
from streams.wire.schemas import catalog_for
from streams.wire.state import StateFormat
from streams.wire.topics import ContextTopics, GroupNames, TopicSpec

log = logging.getLogger(__name__)


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
                codec = AvroCodec.connect(
                    catalog,
                    settings.registry_url,
                    settings.topic_prefix,
                    keyring=lambda: keyring_for(settings.pg_dsn),
                )
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
        """Create the context's topics when missing; existing ones must match their declaration."""
        ensure_topics(settings, self.topics.specs(settings.partitions))


def ensure_topics(settings: Settings, specs: list[TopicSpec]) -> None:
    """Create topics that do not exist yet and wait until they do; check the ones that existed
    against their declaration (`TopicMismatch` names every difference)."""
    client = admin(settings)
    existing = client.list_topics(timeout=10).topics
    # replication -1: the broker's default.replication.factor (KIP-464), so that one code serves a
    # single broker (1) and a cluster (3); min.insync.replicas also comes from the broker
    missing = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=-1, config=s.config)
        for s in specs
        if s.name not in existing
    ]
    if missing:
        _create(client, missing)
    problems = check_topics(client, [s for s in specs if s.name in existing])
    TOPIC_PROBLEMS.update((s.name for s in specs), problems)
    if problems:
        raise TopicMismatch(problems)


def _create(client: Any, missing: list[NewTopic]) -> None:
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


# --- checking existing topics against their declaration ------------------------------------------

AT_LEAST = frozenset({"retention.ms", "retention.bytes", "max.message.bytes"})
"""Settings a topic may exceed its declaration in (it keeps more, or takes bigger records);
every other declared setting (cleanup policy, timestamp type, ...) must be equal."""
CHECK_FOR_S = 15.0
"""How long a difference may last before it counts: a topic another worker has just created may
show fewer partitions for a moment."""


@dataclass(frozen=True)
class TopicProblem:
    """One way an existing topic differs from its declaration (`streams.wire.topics`)."""

    topic: str
    setting: str
    """`partitions`, or a topic config name (`cleanup.policy`, `message.timestamp.type`, ...)."""
    declared: str
    actual: str

    def __str__(self) -> str:
        return f"topic {self.topic}: {self.setting} is {self.actual}, declared {self.declared}"

    def as_dict(self) -> dict[str, str]:
        """The problem as JSON (for `/health`)."""
        return {
            "topic": self.topic,
            "setting": self.setting,
            "declared": self.declared,
            "actual": self.actual,
        }


class TopicMismatch(RuntimeError):
    """Topics exist but differ from their declaration: what relies on them must not run (a raw
    topic with too few partitions would fail every transaction, for ever). The fix is the
    operator's: alter the topic, or delete it and let the worker create it."""

    def __init__(self, problems: list[TopicProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


class TopicProblems:
    """The topic mismatches this process found (by topic), for `/health` and the metric
    `streams_topic_mismatches`; a topic checked again without a difference is cleared."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: dict[str, list[TopicProblem]] = {}

    def update(self, checked: Iterable[str], problems: list[TopicProblem]) -> None:
        """The outcome of checking the topics `checked`."""
        with self._lock:
            for topic in checked:
                found = [p for p in problems if p.topic == topic]
                if found or topic in self._found:
                    metrics.TOPIC_MISMATCHES.labels(topic).set(len(found))
                if found:
                    self._found[topic] = found
                else:
                    self._found.pop(topic, None)

    def all(self) -> list[TopicProblem]:
        """Every difference found and not cleared since."""
        with self._lock:
            return [p for found in self._found.values() for p in found]


TOPIC_PROBLEMS = TopicProblems()
"""This process's topic mismatches (a worker checks its topics once per stage start)."""


def check_topics(client: Any, specs: list[TopicSpec]) -> list[TopicProblem]:
    """How the existing topics `specs` differ from their declaration: partition count, and every
    declared config (`AT_LEAST` ones may be larger). Checked again for `CHECK_FOR_S` while they
    differ or cannot be read (a topic being created); one still unreadable then is not reported."""
    if not specs:
        return []
    deadline = time.monotonic() + CHECK_FOR_S
    while True:
        try:
            problems, unread = _differences(client, specs)
        except KafkaException as exc:
            problems, unread = [], [f"{exc}"]
        if (not problems and not unread) or time.monotonic() >= deadline:
            if unread:
                log.warning("topics not checked (unreadable for %.0f s): %s", CHECK_FOR_S, unread)
            return problems
        time.sleep(0.5)


def _differences(client: Any, specs: list[TopicSpec]) -> tuple[list[TopicProblem], list[str]]:
    """The differences found, and the topics whose metadata or configuration could not be read."""
    found = client.list_topics(timeout=10).topics
    problems, unread = [], []
    declared = {s.name: s.config for s in specs if s.config}
    for spec in specs:
        topic = found.get(spec.name)
        if topic is None or topic.error is not None:
            unread.append(spec.name)
            declared.pop(spec.name, None)
        elif len(topic.partitions) != spec.partitions:
            count = str(len(topic.partitions))
            problems.append(TopicProblem(spec.name, "partitions", str(spec.partitions), count))
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in declared]
    futures = client.describe_configs(resources, request_timeout=10) if resources else {}
    for resource, future in futures.items():
        try:
            entries = future.result()
        except KafkaException:
            unread.append(resource.name)
            continue
        for setting, value in declared[resource.name].items():
            entry = entries.get(setting)
            actual = None if entry is None else entry.value
            if not _satisfies(setting, value, actual):
                problems.append(TopicProblem(resource.name, setting, value, str(actual)))
    return problems, unread


def _satisfies(setting: str, declared: str, actual: str | None) -> bool:
    if actual is None:
        return False
    if setting not in AT_LEAST:
        return actual == declared
    try:
        want, have = int(declared), int(actual)
    except ValueError:
        return actual == declared
    return have < 0 or (want >= 0 and have >= want)  # -1: unbounded


class Runtimes:
    """One `ContextRuntime` per context of a worker, shared by its stages and endpoints, and
    connected on first use (blocking: it waits up to `retry_for_s` for the registry, and checks
    the context's existing topics)."""

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
                self._check_topics(runtime)
                self._runtimes[name] = runtime
            return runtime

    def _check_topics(self, runtime: ContextRuntime) -> None:
        """Report the context's existing topics that differ from their declaration before the
        worker serves (`/health` answers 503 from then on); the stage using one refuses to run."""
        partitions, topics = self.settings.partitions, runtime.topics
        specs = [*topics.specs(partitions), topics.changelog_spec(partitions)]
        if self.settings.windows_enabled:
            for aggregation in runtime.context.windows:
                specs += topics.window_specs(aggregation.name, partitions)
        client = admin(self.settings)
        try:
            existing = client.list_topics(timeout=10).topics
        except KafkaException as exc:  # the broker is away: each stage checks its topics as it starts
            log.warning("%s: topics not checked yet: %s", runtime.context.name, exc)
            return
        present = [s for s in specs if s.name in existing]
        TOPIC_PROBLEMS.update((s.name for s in present), check_topics(client, present))

    def connected(self, name: str) -> ContextRuntime | None:
        """The runtime of `name` if it is connected already (never blocks)."""
        return self._runtimes.get(name)
