"""Which view topics the sink deriver copies: the version each view serves, followed live.

`streams replay` builds version N+1 of a view on `<ctx>.<view>.vN+1` beside the served one and
then switches `<ctx>.views-control` to it. The deriver follows that topic: it copies the served
version's topic and nothing else, under the view's stable entity type `<ctx>.<view>`, so the
rows of the new version replace those of the old one in GenericReadModel. A version's topic is
copied from its first offset (its partitions are new to the deriver's group); before that, the
rows of documents that the new version does not hold are deleted (`stale_rows`): without that,
a document the old version had and the new one never wrote would stay in PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from streams.config import Settings
from streams.core.views import ViewVersions
from streams.kafka import clients
from streams.kafka.runtime import ContextRuntime
from streams.read.readside import read_versions
from streams.read.restore import latest_values
from streams.sinks.rows import ReadModelKey
from streams.wire.codec import AvroCodec
from streams.wire.topics import partition_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewSource:
    """One copied view: its served version's topic and the rows' entity type."""

    name: str
    version: int
    topic: str
    entity_type: str


class ViewSources:
    """The served version of every copied view, kept up to date from `<ctx>.views-control`."""

    def __init__(self, settings: Settings, runtime: ContextRuntime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.names = settings.sink_views or tuple(view.name for view in runtime.context.views)
        self.versions: dict[str, int] = {}
        self._control: Consumer | None = None

    def load(self) -> None:
        """Read the control topic to its end and follow it from there (blocking)."""
        records, position = read_versions(self.settings, self.runtime)
        self.versions = {name: self._served(records.get(name)) for name in self.names}
        self.close()
        self._control = clients.reader(self.settings)
        self._control.assign([TopicPartition(self.runtime.topics.views_control, 0, position)])

    @staticmethod
    def _served(record: ViewVersions | None) -> int:
        return record.active if record is not None else 1

    def poll(self) -> bool:
        """Take the control records that arrived; True when a served version changed."""
        if self._control is None:
            return False
        changed = False
        for msg in clients.records(self._control.consume(100, timeout=0), "views-control"):
            if msg.value() is None:
                continue
            record: ViewVersions = self.runtime.codec.decode(msg.value()).message
            if record.view in self.versions and self.versions[record.view] != record.active:
                log.info("sink deriver: %s now serves v%d", record.view, record.active)
                self.versions[record.view] = record.active
                changed = True
        return changed

    def sources(self) -> list[ViewSource]:
        """Every copied view's served version."""
        topics = self.runtime.topics
        return [
            ViewSource(
                name, version, topics.view_version(name, version), f"{self.runtime.context.name}.{name}"
            )
            for name, version in self.versions.items()
        ]

    def by_topic(self, topic: str) -> ViewSource | None:
        """The view whose served version `topic` is (None: no served version's topic)."""
        return next((s for s in self.sources() if s.topic == topic), None)

    def close(self) -> None:
        """Stop following the control topic."""
        if self._control is not None:
            self._control.close()
            self._control = None


def stale_rows(
    settings: Settings,
    runtime: ContextRuntime,
    codec: AvroCodec,
    source: ViewSource,
    partitions: Iterable[int],
) -> list[bytes]:
    """The sink keys of rows of `source`'s view, for documents of `partitions`, that its topic
    does not hold (alive) now: what is left of an earlier version in GenericReadModel. Reads the
    view topic's partitions and the whole read-model sink topic (blocking)."""
    wanted = set(partitions)
    alive: set[str] = set()
    for partition in wanted:
        for chunk in latest_values(settings, source.topic, partition):
            for key, value in chunk.values.items():
                entity = key.decode("utf-8", "replace")
                (alive.add if value is not None else alive.discard)(entity)
    rows: dict[str, bytes] = {}
    sink = runtime.topics.readmodels_sink
    count = len(clients.admin(settings).list_topics(sink, timeout=10).topics[sink].partitions)
    for partition in range(count):
        for chunk in latest_values(settings, sink, partition):
            for raw_key, value in chunk.values.items():
                row_key: ReadModelKey = codec.decode(raw_key).message
                if row_key.EntityType != source.entity_type:
                    continue
                if partition_for(row_key.EntityID.encode(), settings.partitions) not in wanted:
                    continue
                if value is None:
                    rows.pop(row_key.EntityID, None)
                else:
                    rows[row_key.EntityID] = raw_key
    return [raw for entity, raw in rows.items() if entity not in alive]
