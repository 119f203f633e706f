"""The read side of one worker: a context's view versions, their stages and the history index.

Which version of a view is served, and which one a replay is building beside it, is recorded
on the compacted `<ctx>.views-control` topic. Every worker follows it and runs the stages of
exactly those versions, so `streams replay` starts and switches versions on all workers at once.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams.client import consumer_config
from streams.config import Settings
from streams.core.views import View, ViewVersions
from streams.kafka.runtime import ContextRuntime, ensure_topics, watermarks
from streams.read.projector import HistoryIndexer, Repartitioner, Stage, ViewProjector
from streams.wire.topics import DAY_MS, TopicSpec

log = logging.getLogger(__name__)


def view_group(settings: Settings, runtime: ContextRuntime, view: str, version: int) -> str:
    """Consumer group of one version of a view (the repartitioner adds `.repartition`)."""
    return f"{settings.app_id}.{runtime.topics.prefix}{runtime.context.name}.view.{view}.v{version}"


def history_group(settings: Settings, runtime: ContextRuntime) -> str:
    """Consumer group of the history index."""
    return f"{settings.app_id}.{runtime.topics.prefix}{runtime.context.name}.history"


def view_specs(settings: Settings, runtime: ContextRuntime, view: View, version: int) -> list[TopicSpec]:
    """The topics one version of a view writes."""
    topics, n = runtime.topics, settings.partitions
    specs = [
        TopicSpec(topics.view_version(view.name, version), n, {"cleanup.policy": "compact"}),
        TopicSpec(
            topics.view_dlq(view.name), 1, {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)}
        ),
    ]
    if view.repartitioned:
        retention = {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}
        specs.append(TopicSpec(topics.repartition(view.name, version), n, retention))
    return specs


def read_versions(settings: Settings, runtime: ContextRuntime) -> tuple[dict[str, ViewVersions], int]:
    """The current control record of every view (absent: version 1 active, nothing building),
    and the offset to follow the control topic from."""
    consumer = Consumer(consumer_config(settings, **{"enable.partition.eof": True}))
    topic = runtime.topics.views_control
    try:
        _, high = watermarks(consumer, TopicPartition(topic, 0))
        out: dict[str, ViewVersions] = {}
        if high <= 0:
            return out, 0
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        position = 0
        while position < high:
            msg = consumer.poll(2.0)
            if msg is None:
                break
            if msg.error() is not None:
                continue
            position = msg.offset() + 1
            if msg.value() is not None:
                record: ViewVersions = runtime.codec.decode(msg.value()).message
                out[record.view] = record
        return out, position
    finally:
        consumer.close()


class ContextReadSide:
    """The stages of one context's views (active and building versions) and history index."""

    def __init__(self, settings: Settings, runtime: ContextRuntime, *, worker_id: str, url: str) -> None:
        self.settings = settings
        self.runtime = runtime
        self.url = url
        self.views: dict[str, View] = {v.name: v for v in runtime.context.views}
        self.versions: dict[str, ViewVersions] = {}
        self.projectors: dict[tuple[str, int], ViewProjector] = {}
        self.repartitioners: dict[tuple[str, int], Repartitioner] = {}
        self.root = (
            Path(settings.data_dir) / worker_id / "views" / f"{runtime.topics.prefix}{runtime.context.name}"
        )
        self.history = HistoryIndexer(
            settings,
            runtime,
            group_id=history_group(settings, runtime),
            inputs=[runtime.topics.events, runtime.topics.snapshots],
            data_dir=self.root / "history",
            client_id=url,
        )
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._follower: threading.Thread | None = None

    def active(self, view: str) -> int:
        """The version the query API serves."""
        record = self.versions.get(view)
        return record.active if record is not None else 1

    def projector(self, view: str, version: int | None = None) -> ViewProjector | None:
        """This worker's projector of a view version (default: the active one)."""
        return self.projectors.get((view, version or self.active(view)))

    def stages(self) -> list[Stage]:
        """Every running stage."""
        return [self.history, *self.repartitioners.values(), *self.projectors.values()]

    def start(self) -> None:
        """Create topics, load the control records, start the stages, follow the control topic."""
        control = TopicSpec(self.runtime.topics.views_control, 1, {"cleanup.policy": "compact"})
        ensure_topics(self.settings, [*self.runtime.topics.specs(self.settings.partitions), control])
        self.versions, position = read_versions(self.settings, self.runtime)
        self.history.start()
        self.reconcile()
        self._follower = threading.Thread(
            target=self._follow, args=(position,), name="views-control", daemon=True
        )
        self._follower.start()

    def stop(self) -> None:
        """Stop every stage."""
        self._stop.set()
        for stage in self.stages():
            stage.stop()

    def reconcile(self) -> None:
        """Run the stages of the active and building versions; drop the others' stores."""
        with self._lock:
            wanted = set()
            for name in self.views:
                record = self.versions.get(name)
                wanted.add((name, record.active if record else 1))
                if record is not None and record.building:
                    wanted.add((name, record.building))
            for key in wanted - set(self.projectors):
                self._start_version(*key)
            for key in set(self.projectors) - wanted:
                log.info("dropping %s v%d on this worker", *key)
                self.projectors.pop(key).destroy()
                repartitioner = self.repartitioners.pop(key, None)
                if repartitioner is not None:
                    repartitioner.destroy()

    def _start_version(self, name: str, version: int) -> None:
        view = self.views[name]
        ensure_topics(self.settings, view_specs(self.settings, self.runtime, view, version))
        group = view_group(self.settings, self.runtime, name, version)
        directory = self.root / f"{name}.v{version}"
        topics = self.runtime.topics
        source = topics.events
        if view.repartitioned:
            source = topics.repartition(name, version)
            repartitioner = Repartitioner(
                self.settings,
                self.runtime,
                view,
                version,
                group_id=f"{group}.repartition",
                inputs=[topics.events],
                data_dir=directory / "keys",
                client_id=self.url,
            )
            self.repartitioners[(name, version)] = repartitioner
            repartitioner.start()
        projector = ViewProjector(
            self.settings,
            self.runtime,
            view,
            version,
            group_id=group,
            inputs=[source],
            data_dir=directory / "documents",
            client_id=self.url,
        )
        self.projectors[(name, version)] = projector
        projector.start()
        log.info("view %s v%d started (%s)", name, version, group)

    def _follow(self, position: int) -> None:
        consumer = Consumer(consumer_config(self.settings))
        consumer.assign([TopicPartition(self.runtime.topics.views_control, 0, position)])
        try:
            while not self._stop.is_set():
                msg = consumer.poll(0.5)
                if msg is None or msg.error() is not None or msg.value() is None:
                    continue
                record: ViewVersions = self.runtime.codec.decode(msg.value()).message
                if record.view in self.views and self.versions.get(record.view) != record:
                    self.versions[record.view] = record
                    log.info("views-control: %s", record)
                    self.reconcile()
        except Exception:
            log.exception("views-control follower failed")
        finally:
            consumer.close()


def status(side: ContextReadSide) -> list[dict[str, Any]]:
    """Per view version: served or building, lag and error (for `GET /<ctx>/views`)."""
    out = []
    for (name, version), projector in sorted(side.projectors.items()):
        repartitioner = side.repartitioners.get((name, version))
        lags = [projector.lag(), *([repartitioner.lag()] if repartitioner else [])]
        out.append(
            {
                "view": name,
                "version": version,
                "topic": projector.output,
                "active": side.active(name) == version,
                "partitions": sorted(projector.stores),
                "lag": -1 if -1 in lags else sum(lags),  # -1: not measured yet
                "error": projector.error or (repartitioner.error if repartitioner else ""),
            }
        )
    return out
