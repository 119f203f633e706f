"""The one place that knows topic names, their policies, the consumer-group names and the schema
registry's subject names."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

DAY_MS = 24 * 3600 * 1000
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
DLQ_MAX_BYTES = 8 * 1024 * 1024
"""A DLQ keeps a refused record whole, with the reason's headers, whatever its size."""
COMPACT = {"cleanup.policy": "compact"}
BROKER_TIME = {"message.timestamp.type": "LogAppendTime"}
"""Records are stamped by the broker when appended: producers (devices) cannot set the time."""
RECORD_OVERHEAD = 100
"""Bytes a record batch adds to one record (batch header 61, record framing up to ~25)."""
HEADER_OVERHEAD = 10
"""Bytes a record header adds besides its name and value (an upper bound)."""


def record_size(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | None = None
) -> int:
    """An upper bound of the bytes a record takes in a batch of its own, before compression:
    what is checked against a topic's `max.message.bytes` before producing."""
    size = RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    for name, header in headers or ():
        size += HEADER_OVERHEAD + len(name) + len(header or b"")
    return size


def partition_for(key: bytes, partitions: int) -> int:
    """The partition librdkafka's default (consistent) partitioner picks for `key`: where an
    aggregate's commands, events, state and snapshots live."""
    return zlib.crc32(key) % partitions


def subject_name(prefix: str, fullname: str) -> str:
    """The registry subject of a record type in one deployment: the topic prefix, then the
    record's full name (record-name strategy, e.g. `orders.ItemAdded`). Deployments with different
    prefixes on one registry never share (or break) each other's subjects; no prefix keeps the
    bare record names (docs/versioning.md, "Subjects and prefixes")."""
    return f"{prefix}{fullname}"


def secret_topic(prefix: str, app_id: str) -> str:
    """The topic holding a deployment's shared secret (`streams.kafka.secret`): one partition."""
    return f"{prefix}__{app_id}.secret"


def faust_leader_spec(app_id: str) -> TopicSpec:
    """Faust's leader-election topic (its `LeaderAssignor`'s `<app id>-__assignor-__leader`, one
    partition), which the worker creates itself: Faust's own creation sends the request to the
    node its metadata names controller and ends the worker's start if that node is down."""
    return TopicSpec(f"{app_id}-__assignor-__leader", 1, {})


def privacy_topic(prefix: str) -> str:
    """The deployment's audited privacy topic (`SubjectForgotten`, docs/privacy.md), shared by
    every context: keyed by subject, one partition, kept forever."""
    return f"{prefix}streams.privacy"


def privacy_spec(prefix: str, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> TopicSpec:
    """The privacy topic's policy: an audit trail, never deleted nor compacted."""
    config = {"cleanup.policy": "delete", "retention.ms": "-1", "max.message.bytes": str(max_message_bytes)}
    return TopicSpec(privacy_topic(prefix), 1, config)


@dataclass(frozen=True)
class TopicSpec:
    """A topic's name and the configuration it is created with."""

    name: str
    partitions: int
    config: dict[str, str]


@dataclass(frozen=True)
class LogicalTopic:
    """A topic named as people write it: `<ctx>.<suffix>`, without the deployment's prefix."""

    context: str
    suffix: str


def logical_topic(name: str, prefix: str) -> LogicalTopic | None:
    """The context and suffix of a topic given with or without the deployment's `prefix`
    (`orders.events` and `t1.orders.events` under prefix `t1.`), or None for a name that is not
    `<ctx>.<suffix>`."""
    bare = name.removeprefix(prefix) if prefix else name
    context, _, suffix = bare.partition(".")
    if not context or not suffix:
        return None
    return LogicalTopic(context, suffix)


@dataclass(frozen=True)
class ContextTopics:
    """Topic names of one bounded context (`prefix` isolates tests and replays)."""

    context: str
    prefix: str = ""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """The record limit every topic but the DLQs is created with (`max.message.bytes`)."""

    def _name(self, suffix: str) -> str:
        return f"{self.prefix}{self.context}.{suffix}"

    @property
    def every(self) -> str:
        """What every topic of this context starts with (`<prefix><ctx>.`): a prefixed ACL's name."""
        return self._name("")

    @property
    def commands(self) -> str:
        """Commands, keyed by aggregate id."""
        return self._name("commands")

    @property
    def events(self) -> str:
        """The event store: keyed by aggregate id, kept forever."""
        return self._name("events")

    @property
    def results(self) -> str:
        """Command results, keyed by command id."""
        return self._name("command-results")

    @property
    def dlq(self) -> str:
        """Records that could not be decoded or handled, with the reason in headers."""
        return self._name("dlq")

    @property
    def changelog(self) -> str:
        """The write side's state (aggregates and command results), compacted."""
        return self._name("aggregates-changelog")

    @property
    def snapshots(self) -> str:
        """Aggregate state at version N, compacted."""
        return self._name("snapshots")

    def named(self, suffix: str) -> str:
        """Any topic of this context by the suffix of its logical name (`events`, `<view>`...)."""
        return self._name(suffix)

    def view(self, view: str) -> str:
        """A compacted read-model topic."""
        return self._name(view)

    def view_version(self, view: str, version: int) -> str:
        """The read-model topic of one version of a view (version 1 is `view`, replays add `.vN`)."""
        return self.view(view) if version <= 1 else self._name(f"{view}.v{version}")

    def repartition(self, view: str, version: int) -> str:
        """Events re-keyed by a view's document id (views not keyed by aggregate id)."""
        return self._name(f"{view}.v{version}-repartition")

    def repartition_keys(self, view: str, version: int) -> str:
        """The repartitioner's changelog of a re-keyed view: aggregate id -> its document key,
        plus each partition's position (compacted; a new owner restores from it)."""
        return self._name(f"{view}.v{version}-keys")

    def view_dlq(self, view: str) -> str:
        """Events a view's handler could not fold, with the reason in headers."""
        return self._name(f"{view}.dlq")

    @property
    def views_control(self) -> str:
        """Which version of each view is served (compacted, one partition)."""
        return self._name("views-control")

    @property
    def events_sink(self) -> str:
        """Events flattened into rows for the JDBC sink, keyed by event id."""
        return self._name("events-sink")

    @property
    def snapshots_sink(self) -> str:
        """Snapshots flattened into rows for the JDBC sink, keyed by aggregate id."""
        return self._name("snapshots-sink")

    @property
    def readmodels_sink(self) -> str:
        """Every view's documents flattened into rows for the JDBC sink."""
        return self._name("readmodels-sink")

    @property
    def connect_dlq(self) -> str:
        """Sink records Kafka Connect could not convert (its own dead-letter queue)."""
        return self._name("connect-dlq")

    # --- windowed aggregations (streams/windows): a raw input and what its stage writes ---------

    def window_input(self, name: str) -> str:
        """The raw, high-rate input of a windowed aggregation, keyed by aggregate id."""
        return self._name(name)

    def window_dlq(self, name: str) -> str:
        """Raw records the aggregation refused (undecodable, unknown key...), with the reason."""
        return self._name(f"{name}.dlq")

    def window_late(self, name: str) -> str:
        """Raw records that arrived after their window closed (window end + grace)."""
        return self._name(f"{name}.late")

    def window_changelog(self, name: str) -> str:
        """The window stage's state (open windows, join table, timers, stream time), compacted."""
        return self._name(f"{name}.windows-changelog")

    def window_specs(self, name: str, partitions: int) -> list[TopicSpec]:
        """The topics of one windowed aggregation: the raw input is co-partitioned with the
        commands and events (the join table is read from the events), and stamped by the broker
        (`LogAppendTime`): a record's timestamp is when it arrived, not what its producer says,
        the clock the stage trusts (docs/windows.md)."""
        raw = {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS), **BROKER_TIME}
        late = {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)}
        return [
            self._spec(self.window_input(name), partitions, raw),
            self._dlq_spec(self.window_dlq(name)),
            TopicSpec(self.window_late(name), 1, {**late, "max.message.bytes": str(DLQ_MAX_BYTES)}),
            self._spec(self.window_changelog(name), partitions, COMPACT),
        ]

    # --- policies: every topic is created with an explicit record limit ----------------------

    def _spec(self, name: str, partitions: int, config: dict[str, str]) -> TopicSpec:
        return TopicSpec(name, partitions, {**config, "max.message.bytes": str(self.max_message_bytes)})

    def _dlq_spec(self, name: str) -> TopicSpec:
        policy = {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)}
        return TopicSpec(name, 1, {**policy, "max.message.bytes": str(DLQ_MAX_BYTES)})

    def sink_specs(self, partitions: int) -> list[TopicSpec]:
        """Derived sink topics: rebuildable from the log, so bounded retention for events."""
        return [
            self._spec(
                self.events_sink, partitions, {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}
            ),
            self._spec(self.snapshots_sink, partitions, COMPACT),
            self._spec(self.readmodels_sink, partitions, COMPACT),
            self._dlq_spec(self.connect_dlq),
        ]

    def changelog_spec(self, partitions: int) -> TopicSpec:
        """The state changelog: co-partitioned with the commands, compacted."""
        return self._spec(self.changelog, partitions, COMPACT)

    def control_spec(self) -> TopicSpec:
        """The views' control topic: one partition, compacted."""
        return self._spec(self.views_control, 1, COMPACT)

    def view_specs(self, view: str, version: int, partitions: int, *, repartitioned: bool) -> list[TopicSpec]:
        """The topics one version of a view writes."""
        specs = [
            self._spec(self.view_version(view, version), partitions, COMPACT),
            self._dlq_spec(self.view_dlq(view)),
        ]
        if repartitioned:
            retention = {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}
            specs.append(self._spec(self.repartition(view, version), partitions, retention))
            specs.append(self._spec(self.repartition_keys(view, version), partitions, COMPACT))
        return specs

    def specs(self, partitions: int) -> list[TopicSpec]:
        """Every topic the write side needs, with its policy from DESIGN.md."""
        delete_week = {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}
        return [
            self._spec(self.commands, partitions, delete_week),
            self._spec(self.events, partitions, {"cleanup.policy": "delete", "retention.ms": "-1"}),
            self._spec(self.results, partitions, delete_week),
            self._dlq_spec(self.dlq),
            self._spec(self.snapshots, partitions, COMPACT),
        ]


@dataclass(frozen=True)
class ProcessTopics:
    """Topic names of one process manager (`streams.core.processes`): its own records, beside
    the contexts' topics it reads and writes. A manager's name must not be a context's."""

    process: str
    prefix: str = ""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES

    def _name(self, suffix: str) -> str:
        return f"{self.prefix}{self.process}.{suffix}"

    @property
    def inputs(self) -> str:
        """Subscribed events re-keyed by correlation id (when it is not their aggregate's
        partition), with their source in the `process_source` header."""
        return self._name("process-inputs")

    @property
    def timers(self) -> str:
        """`DeadlineReached` records, keyed by correlation id: written and read by the stage."""
        return self._name("timers")

    @property
    def changelog(self) -> str:
        """The instances and the due-deadline index, compacted."""
        return self._name("process-changelog")

    @property
    def dlq(self) -> str:
        """Inputs the manager refused (undecodable, failing, forged deadlines), with the reason."""
        return self._name("dlq")

    def specs(self, partitions: int) -> list[TopicSpec]:
        """The manager's topics: co-partitioned with the contexts' (correlation id = key)."""
        week = {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}
        limit = {"max.message.bytes": str(self.max_message_bytes)}
        dlq = {
            "cleanup.policy": "delete",
            "retention.ms": str(30 * DAY_MS),
            "max.message.bytes": str(DLQ_MAX_BYTES),
        }
        return [
            TopicSpec(self.inputs, partitions, {**week, **limit}),
            TopicSpec(self.timers, partitions, {"cleanup.policy": "delete", "retention.ms": "-1", **limit}),
            TopicSpec(self.changelog, partitions, {**COMPACT, **limit}),
            TopicSpec(self.dlq, 1, dlq),
        ]


@dataclass(frozen=True)
class GroupNames:
    """Consumer groups and transactional ids of one context's stages in one deployment.

    Every name starts with `<app id>.<topic prefix><context>.`, so deployments sharing a
    cluster never share a group.
    """

    app_id: str
    prefix: str
    context: str

    def _name(self, suffix: str) -> str:
        return f"{self.app_id}.{self.prefix}{self.context}.{suffix}"

    @property
    def every(self) -> str:
        """What every group and transactional id of this context starts with: a prefixed ACL's name."""
        return self._name("")

    @property
    def handler(self) -> str:
        """The write side's command handlers."""
        return self._name("handler")

    def transactional_id(self, worker_id: str) -> str:
        """A worker's write-path transactional id: stable across its restarts, so its first
        `init_transactions` aborts what its previous life left open."""
        return f"{self.handler}.{worker_id}"

    def view(self, view: str, version: int) -> str:
        """The projector of one version of a view."""
        return self._name(f"view.{view}.v{version}")

    def repartition(self, view: str, version: int) -> str:
        """The repartitioner feeding one version of a re-keyed view."""
        return f"{self.view(view, version)}.repartition"

    def windows(self, name: str) -> str:
        """The window stage of one windowed aggregation."""
        return self._name(f"windows.{name}")

    def windows_transactional_id(self, name: str, worker_id: str) -> str:
        """A worker's transactional id for one window stage (stable across its restarts)."""
        return f"{self.windows(name)}.{worker_id}"

    @property
    def process(self) -> str:
        """The stage of a process manager (a `GroupNames` whose context is the manager's name)."""
        return self._name("process")

    def process_transactional_id(self, worker_id: str) -> str:
        """A worker's transactional id for a process manager's stage (stable across restarts)."""
        return f"{self.process}.{worker_id}"

    @property
    def history(self) -> str:
        """The history index."""
        return self._name("history")

    @property
    def sink(self) -> str:
        """The sink deriver."""
        return self._name("sink")

    def rebuild_transactional_id(self, run: str) -> str:
        """The transactional id of one `streams rebuild` run."""
        return self._name(f"rebuild.{run}")
