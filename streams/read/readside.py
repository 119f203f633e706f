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

from confluent_kafka import TopicPartition

from streams.config import Settings
from streams.core.views import View, ViewVersions
from streams.kafka import clients
from streams.kafka.readers import PartitionReader, ReaderPool
from streams.kafka.runtime import ContextRuntime, Runtimes, ensure_topics
from streams.read.documents import ViewDocuments
from streams.read.history import HistoryReader
from streams.read.history_index import HistoryIndexer
from streams.read.projector import ViewProjector
from streams.read.repartitioner import Repartitioner
from streams.read.stage import Stage

log = logging.getLogger(__name__)

HISTORY_READERS = 2
"""Pooled consumers per context that read aggregate histories for the query API."""


def read_versions(settings: Settings, runtime: ContextRuntime) -> tuple[dict[str, ViewVersions], int]:
    """The current control record of every view (absent: version 1 active, nothing building),
    and the offset to follow the control topic from."""
    out: dict[str, ViewVersions] = {}
    with PartitionReader(settings, runtime.topics.views_control, 0) as reader:
        for batch in reader.batches():
            for msg in batch:
                if msg.value() is not None:
                    record: ViewVersions = runtime.codec.decode(msg.value()).message
                    out[record.view] = record
        return out, reader.position


class ContextReadSide:
    """The stages of one context's views (active and building versions) and history index."""

    def __init__(
        self, settings: Settings, runtime: ContextRuntime, *, worker_id: str, client_id: str
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.client_id = client_id
        """What this worker's stages advertise in their groups (its signed URL)."""
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
            group_id=runtime.groups.history,
            inputs=[runtime.topics.events, runtime.topics.snapshots],
            data_dir=self.root / "history",
            client_id=client_id,
        )
        self.history_reader = HistoryReader(
            settings, runtime, self.history, ReaderPool(settings, HISTORY_READERS)
        )
        """Reads an aggregate's events and past states for the query API (in an executor)."""
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

    def documents(self, view: str, version: int | None = None) -> ViewDocuments | None:
        """This worker's documents of a view version (default: the active one; None: not
        projected here)."""
        projector = self.projector(view, version)
        return None if projector is None else projector.documents

    def stages(self) -> list[Stage]:
        """Every running stage."""
        return [self.history, *self.repartitioners.values(), *self.projectors.values()]

    def start(self) -> None:
        """Create topics, load the control records, start the stages, follow the control topic."""
        topics = self.runtime.topics
        ensure_topics(self.settings, [*topics.specs(self.settings.partitions), topics.control_spec()])
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
        self.history_reader.close()

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
        repartitioner, projector = start_version(
            self.settings, self.runtime, self.views[name], version,
            directory=self.root / f"{name}.v{version}", client_id=self.client_id,
        )  # fmt: skip
        if repartitioner is not None:
            self.repartitioners[(name, version)] = repartitioner
        self.projectors[(name, version)] = projector

    def _follow(self, position: int) -> None:
        consumer = clients.reader(self.settings)
        consumer.assign([TopicPartition(self.runtime.topics.views_control, 0, position)])
        try:
            while not self._stop.is_set():
                for msg in clients.records(clients.take(consumer, 100, 0.5), "views-control"):
                    self._on_control(msg.value())
        except Exception:
            log.exception("views-control follower failed")
        finally:
            consumer.close()

    def _on_control(self, value: bytes | None) -> None:
        if value is not None:
            record: ViewVersions = self.runtime.codec.decode(value).message
            if record.view in self.views and self.versions.get(record.view) != record:
                self.versions[record.view] = record
                log.info("views-control: %s", record)
                self.reconcile()


def start_version(
    settings: Settings, runtime: ContextRuntime, view: View, version: int, *, directory: Path, client_id: str
) -> tuple[Repartitioner | None, ViewProjector]:
    """Create a view version's topics and start its stages (the re-keying one first, for a
    re-partitioned view), members of the version's consumer groups, storing under `directory`."""
    topics = runtime.topics
    specs = topics.view_specs(view.name, version, settings.partitions, repartitioned=view.repartitioned)
    ensure_topics(settings, specs)
    group = runtime.groups.view(view.name, version)
    source = topics.events
    repartitioner = None
    if view.repartitioned:
        source = topics.repartition(view.name, version)
        repartitioner = Repartitioner(
            settings,
            runtime,
            view,
            version,
            group_id=runtime.groups.repartition(view.name, version),
            inputs=[topics.events],
            data_dir=directory / "keys",
            client_id=client_id,
        )
        repartitioner.start()
    projector = ViewProjector(
        settings,
        runtime,
        view,
        version,
        group_id=group,
        inputs=[source],
        data_dir=directory / "documents",
        client_id=client_id,
    )
    projector.start()
    log.info("view %s v%d started (%s)", view.name, version, group)
    return repartitioner, projector


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
                "consumed": projector.consumed,
                "restored": {
                    str(p): {"documents": r.keys, "position": r.position}
                    for p, r in sorted(projector.restored.items())
                },
            }
        )
    return out


class WorkerReadSide:
    """This worker's read side: a `ContextReadSide` per context, started and stopped with it."""

    def __init__(self, settings: Settings, runtimes: Runtimes, *, worker_id: str, url: str) -> None:
        self.settings = settings
        self.runtimes = runtimes
        self.worker_id = worker_id
        self.url = url
        self.sides: dict[str, ContextReadSide] = {}
        self._stopped = threading.Event()

    def start(self, client_id: str) -> None:
        """Start every context's read side, its stages advertising `client_id` (blocking: it may
        wait for the registry)."""
        for name in self.settings.contexts:
            side = ContextReadSide(
                self.settings, self.runtimes.get(name), worker_id=self.worker_id, client_id=client_id
            )
            side.start()
            self.sides[name] = side

    def run(self) -> None:
        """Wait until stopped (the stages run in threads of their own)."""
        self._stopped.wait()

    def stop(self) -> None:
        """Stop every stage."""
        for side in self.sides.values():
            side.stop()
        self._stopped.set()
