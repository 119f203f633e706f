"""The read side's consuming stages: projections, repartitioning and the history index.

Each stage is one consumer group over co-partitioned input topics, with one RocksDB store per
input partition. A batch is handled at least once: its output (documents, re-keyed events,
DLQ records) is produced and acknowledged first, then the store takes the batch's writes and
input positions in one atomic write, then the offsets are committed (only for lag
monitoring: a stage resumes from its store's positions). A crash between those steps makes
the batch run again, and the version check in `apply_event` makes the second run a no-op.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams import metrics
from streams.config import Settings
from streams.core.views import Document, EventMeta, ReadModelDocument, View, apply_event
from streams.kafka.runtime import ContextRuntime, is_fatal, take
from streams.kafka.store import PartitionStore
from streams.wire import headers as h
from streams.wire.codec import DecodeError, RegistryUnavailable
from streams.wire.jsonable import json_bytes

log = logging.getLogger(__name__)


def failure_reason(exc: Exception) -> str:
    """The DLQ reason: a decode error's machine-readable reason (as on the write side), else
    the exception's class name (a handler bug)."""
    return exc.reason if isinstance(exc, DecodeError) else type(exc).__name__


DOC_PREFIX = b"d:"
KEY_PREFIX = b"k:"
HISTORY_PREFIX = b"h:"
SNAPSHOT_PREFIX = b"s:"
_PAIR = struct.Struct(">qq")
_VERSION = struct.Struct(">q")


def partition_for(key: bytes, partitions: int) -> int:
    """The partition librdkafka's default (consistent) partitioner picks for `key`."""
    return zlib.crc32(key) % partitions


def history_key(aggregate_id: str, version: int, prefix: bytes = HISTORY_PREFIX) -> bytes:
    """Index key of one aggregate version: sorts by aggregate, then version."""
    return prefix + aggregate_id.encode() + b"\x00" + _VERSION.pack(version)


def version_of_key(key: bytes) -> int:
    """The version at the end of a `history_key`."""
    return int(_VERSION.unpack(key[-_VERSION.size :])[0])


def iso_to_ms(text: str) -> int:
    """ISO-8601 UTC (`...Z`) to epoch milliseconds (0 when empty)."""
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000) if text else 0


def encode_document(doc: Document) -> bytes:
    """The store's form of a document (JSON: the state is JSON in the published record too)."""
    return json_bytes({"s": doc.state, "v": doc.versions, "l": doc.last_event_version, "u": doc.last_updated})


def decode_document(entity_id: str, raw: bytes) -> Document:
    """Inverse of `encode_document`."""
    data = orjson.loads(raw)
    return Document(entity_id, data["s"], data["v"], data["l"], data["u"])


_META_HEADERS = frozenset({h.AGGREGATE_ID, h.AGGREGATE_VERSION, h.EVENT_TYPE, h.OCCURRED_AT})
_INDEX_HEADERS = frozenset({h.AGGREGATE_VERSION, h.OCCURRED_AT})


def event_meta(headers: list[tuple[str, bytes]] | None, key: str) -> EventMeta:
    """The event metadata a view handler sees, from the record headers (only the four it
    needs are decoded: this runs for every event of every view)."""
    found = h.pick(headers, _META_HEADERS)
    return EventMeta(
        aggregate_id=found.get(h.AGGREGATE_ID, key),
        aggregate_version=int(found[h.AGGREGATE_VERSION]),
        event_type=found.get(h.EVENT_TYPE, ""),
        occurred_at=found.get(h.OCCURRED_AT, ""),
    )


class HaltProjection(Exception):
    """A handler failed and the view is configured to halt rather than dead-letter."""


@dataclass
class Batch:
    """What one batch writes: store keys per partition, records to produce, positions."""

    stores: dict[int, PartitionStore]
    writes: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    positions: dict[int, dict[str, int]] = field(default_factory=dict)
    out: list[tuple[str, int | None, bytes | None, bytes | None, list[tuple[str, bytes]], int]] = field(
        default_factory=list
    )
    timestamps: list[float] = field(default_factory=list)
    documents: dict[tuple[int, bytes], Document] = field(default_factory=dict)
    """A view's documents as this batch left them, by (partition, key): written and published
    once per batch however many of its events touch them."""

    def get(self, partition: int, key: bytes) -> bytes | None:
        pending = self.writes.get(partition, {})
        if key in pending:
            return pending[key]
        return self.stores[partition].get(key)

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        self.writes.setdefault(partition, {})[key] = value

    def produce(
        self,
        topic: str,
        partition: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        timestamp: int = 0,
    ) -> None:
        self.out.append((topic, partition, key, value, headers or [], timestamp))


class Stage:
    """A consumer group over co-partitioned topics, with a store per partition (one thread)."""

    label = "stage"

    def __init__(
        self,
        settings: Settings,
        runtime: ContextRuntime,
        *,
        group_id: str,
        inputs: list[str],
        data_dir: Path,
        client_id: str,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.group_id = group_id
        self.inputs = inputs
        self.data_dir = data_dir
        self.client_id = client_id
        self.stores: dict[int, PartitionStore] = {}
        self.error: str = ""
        self.consumed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._lock = threading.Lock()
        self._lag = -1
        self._lag_at = 0.0

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name=f"{self.label}-{self.group_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the current batch, leave the group, close the stores."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def destroy(self) -> None:
        """Stop and delete the stores' files (a dropped view version)."""
        self.stop()
        import shutil

        shutil.rmtree(self.data_dir, ignore_errors=True)

    def run(self) -> None:
        """Consume until stopped; failures restart the session after a pause."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                self._session()
                delay = 0.5
            except HaltProjection as exc:
                self.error = str(exc)
                log.error("%s halted: %s", self.group_id, exc)
                break
            except Exception as exc:
                log.exception("%s failed; restarting in %.1fs", self.group_id, delay)
                self.error = f"{type(exc).__name__}: {exc}"
                self._close()
                self._stop.wait(delay)
                delay = min(delay * 2, 15.0)
        self._close()

    def _session(self) -> None:
        self._producer = Producer(
            {
                "bootstrap.servers": self.settings.bootstrap,
                "enable.idempotence": True,
                "linger.ms": 5,
                "compression.type": "lz4",
                "batch.num.messages": 10000,
                # only failures call back into Python: one callback per output record cost more
                # than producing it
                "delivery.report.only.error": True,
            }
        )
        self._consumer = Consumer(
            {
                "bootstrap.servers": self.settings.bootstrap,
                "group.id": self.group_id,
                "client.id": self.client_id,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "range",
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 1000,
                "max.poll.interval.ms": 300000,
                "fetch.wait.max.ms": 20,
            }
        )
        self._consumer.subscribe(self.inputs, on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.error = ""
        while not self._stop.is_set():
            records = take(self._consumer, 2000, 0.1)
            good = []
            for msg in records:
                err = msg.error()
                if err is None:
                    good.append(msg)
                elif err.code() != KafkaError._PARTITION_EOF:
                    if is_fatal(err):
                        raise KafkaException(err)
                    log.warning("%s: %s", self.group_id, err)
            if good:
                self._batch(good)
            self._skip_control_records()
            self._measure_lag()

    def _close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception:
                log.debug("consumer close failed", exc_info=True)
            self._consumer = None
        if self._producer is not None:
            self._producer.flush(10)
            self._producer = None
        with self._lock:
            for store in self.stores.values():
                store.close()
            self.stores.clear()

    # --- rebalance -------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._lock:
            for tp in partitions:
                if tp.partition not in self.stores:
                    self.stores[tp.partition] = PartitionStore(self.data_dir / f"p{tp.partition}")
        consumer.assign(
            [
                TopicPartition(tp.topic, tp.partition, self.stores[tp.partition].position(tp.topic))
                for tp in partitions
            ]
        )
        log.info("%s: assigned %s", self.group_id, sorted({tp.partition for tp in partitions}))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._lock:
            for partition in {tp.partition for tp in partitions}:
                store = self.stores.pop(partition, None)
                if store is not None:
                    store.close()

    def store(self, partition: int) -> PartitionStore | None:
        """The store of a partition this worker owns now, else None."""
        return self.stores.get(partition)

    # --- batches ---------------------------------------------------------------------------

    def _batch(self, messages: list[Message]) -> None:
        assert self._producer is not None and self._consumer is not None
        batch = Batch(dict(self.stores))
        for msg in messages:
            partition = msg.partition()
            if partition not in batch.stores:
                continue
            self.handle(msg, batch)
            batch.positions.setdefault(partition, {})[msg.topic()] = msg.offset() + 1
            _, ts = msg.timestamp()
            if ts > 0:
                batch.timestamps.append(ts / 1000.0)
        self.complete(batch)
        failures: list[Any] = []

        def on_delivery(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(err)

        for topic, partition, key, value, headers, timestamp in batch.out:
            kwargs: dict[str, Any] = {"headers": headers}
            if partition is not None:
                kwargs["partition"] = partition
            if timestamp:
                kwargs["timestamp"] = timestamp
            while True:
                try:
                    self._producer.produce(topic, value, key, on_delivery=on_delivery, **kwargs)
                    break
                except BufferError:
                    self._producer.poll(0.1)
        if batch.out and self._producer.flush(60) > 0:
            raise RuntimeError("output not acknowledged within 60s")
        if failures:
            raise RuntimeError(f"output not acknowledged: {failures[0]}")
        for partition, positions in batch.positions.items():
            batch.stores[partition].write(batch.writes.get(partition, {}), positions)
        offsets = [
            TopicPartition(topic, partition, offset)
            for partition, positions in batch.positions.items()
            for topic, offset in positions.items()
        ]
        self._consumer.commit(offsets=offsets, asynchronous=True)
        self.consumed += len(messages)
        self.after_batch(batch)

    def _skip_control_records(self) -> None:
        """Move stored positions past transaction markers the consumer has skipped.

        A transactional input ends each transaction with a commit marker that is never delivered,
        so `last offset + 1` stays one short of the high watermark after every transaction: the
        lag would never reach 0 (and `streams replay --max-lag 0` would never switch). The
        consumer's own position already counts those markers, and everything before it has been
        handled by the batch just written, so it is safe to store.
        """
        consumer = self._consumer
        if consumer is None or not self.stores:
            return
        wanted = [TopicPartition(topic, p) for p in self.stores for topic in self.inputs]
        try:
            positions = consumer.position(wanted)
        except KafkaException:
            return
        moved: dict[int, dict[str, int]] = {}
        for tp in positions:
            store = self.stores.get(tp.partition)
            if store is not None and tp.offset >= 0 and tp.offset > store.position(tp.topic):
                moved.setdefault(tp.partition, {})[tp.topic] = tp.offset
        if not moved:
            return
        for partition, topics in moved.items():
            self.stores[partition].write({}, topics)
        offsets = [TopicPartition(t, p, o) for p, topics in moved.items() for t, o in topics.items()]
        consumer.commit(offsets=offsets, asynchronous=True)

    def handle(self, msg: Message, batch: Batch) -> None:
        """Fold one record into the batch (subclasses)."""
        raise NotImplementedError

    def complete(self, batch: Batch) -> None:
        """After the batch's last record, before its output is produced (subclasses)."""

    def after_batch(self, batch: Batch) -> None:
        """Metrics after a committed batch (subclasses)."""

    def lag(self) -> int:
        """Records between this stage's positions and the head of its inputs (owned partitions),
        as measured by the stage's own thread at most a second ago (-1: not measured yet)."""
        return self._lag

    def _measure_lag(self) -> None:
        consumer = self._consumer
        if consumer is None or time.monotonic() < self._lag_at:
            return
        self._lag_at = time.monotonic() + 1.0
        total = 0
        for partition, store in list(self.stores.items()):
            for topic in self.inputs:
                try:
                    _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)
                except KafkaException:
                    continue
                if high >= 0:
                    total += max(high - store.position(topic), 0)
        self._lag = total
        self.on_lag(total)

    def on_lag(self, lag: int) -> None:
        """Publish a lag measurement (subclasses)."""


class ViewProjector(Stage):
    """Folds events (or re-keyed events) into a view's documents and publishes each change."""

    label = "view"

    def __init__(
        self, settings: Settings, runtime: ContextRuntime, view: View, version: int, **kw: Any
    ) -> None:
        super().__init__(settings, runtime, **kw)
        self.view = view
        self.version = version
        self.output = runtime.topics.view_version(view.name, version)
        self.dlq = runtime.topics.view_dlq(view.name)
        self.entity_type = f"{runtime.context.name}.{view.name}"
        self._labels = (runtime.context.name, view.name, str(version))

    def document(self, partition: int, entity_id: str) -> Document | None:
        """The document as this worker's store holds it (None: absent or not owned here)."""
        store = self.stores.get(partition)
        raw = store.get(DOC_PREFIX + entity_id.encode()) if store is not None else None
        return None if raw is None else decode_document(entity_id, raw)

    def handle(self, msg: Message, batch: Batch) -> None:
        partition = msg.partition()
        key = msg.key() or b""
        entity_id = key.decode("utf-8", "replace")
        try:
            meta = event_meta(msg.headers(), entity_id)
            decoded = self.runtime.codec.decode(msg.value())
            current = batch.documents.get((partition, key))
            if current is None:
                raw = batch.get(partition, DOC_PREFIX + key)
                current = None if raw is None else decode_document(entity_id, raw)
            updated = apply_event(self.view, current, entity_id, decoded.message, meta)
        except RegistryUnavailable:
            raise  # not the event's fault: the session restarts with back-off and reads it again
        except Exception as exc:  # a bad event or a handler bug must not stop the other documents
            self._failed(msg, batch, failure_reason(exc), str(exc))
            return
        if updated is None:
            metrics.VIEW_SKIPPED.labels(*self._labels).inc()
            return
        batch.documents[(partition, key)] = updated

    def complete(self, batch: Batch) -> None:
        """Store and publish each document the batch changed, once, in its last state: like a
        Kafka Streams record cache, a compacted view topic gets the latest state per commit,
        not every intermediate one (the events topic keeps those)."""
        for (partition, key), doc in batch.documents.items():
            batch.put(partition, DOC_PREFIX + key, encode_document(doc))
            value = None
            if doc.state is not None:
                value = self.runtime.codec.encode(
                    ReadModelDocument(
                        entity_id=doc.entity_id,
                        entity_type=self.entity_type,
                        state=json_bytes(doc.state, sort_keys=True).decode(),
                        last_event_version=doc.last_event_version,
                        last_updated=doc.last_updated,
                    )
                )
            batch.produce(self.output, partition, key, value)

    def _failed(self, msg: Message, batch: Batch, reason: str, detail: str) -> None:
        source = f"{msg.topic()}/{msg.partition()}/{msg.offset()}"
        if self.settings.view_errors == "halt":
            raise HaltProjection(f"{self.entity_type} v{self.version}: {source}: {reason}: {detail}")
        headers = [(k, v or b"") for k, v in (msg.headers() or [])]
        headers += [
            (h.DLQ_REASON, reason.encode()),
            (h.DLQ_DETAIL, detail.encode()[:4000]),
            (h.DLQ_SOURCE, source.encode()),
            ("view_version", str(self.version).encode()),
        ]
        batch.produce(self.dlq, None, msg.key(), msg.value(), headers)
        metrics.VIEW_DLQ.labels(*self._labels, reason).inc()
        log.warning("%s v%d: %s to DLQ: %s (%s)", self.entity_type, self.version, source, reason, detail)

    def after_batch(self, batch: Batch) -> None:
        now = time.time()
        latency = metrics.VIEW_LATENCY.labels(*self._labels)
        for ts in batch.timestamps:
            latency.observe(max(now - ts, 0.0))

    def on_lag(self, lag: int) -> None:
        metrics.VIEW_LAG.labels(*self._labels).set(lag)


class Repartitioner(Stage):
    """Re-keys a context's events by a view's document id (sticky per aggregate)."""

    label = "repartition"

    def __init__(
        self, settings: Settings, runtime: ContextRuntime, view: View, version: int, **kw: Any
    ) -> None:
        super().__init__(settings, runtime, **kw)
        assert view.key_by is not None
        self.key_by: Callable[[Any, str | None], str | None] = view.key_by
        self.view = view
        self.output = runtime.topics.repartition(view.name, version)
        self.dlq = runtime.topics.view_dlq(view.name)
        self.partitions = settings.partitions
        self._labels = (runtime.context.name, view.name, str(version))

    def handle(self, msg: Message, batch: Batch) -> None:
        partition = msg.partition()
        map_key = KEY_PREFIX + (msg.key() or b"")
        raw = batch.get(partition, map_key)
        previous = None if raw is None else raw.decode()
        try:
            event = self.runtime.codec.decode(msg.value()).message
            key = self.key_by(event, previous)
        except RegistryUnavailable:
            raise  # not the event's fault: the session restarts with back-off and reads it again
        except Exception as exc:  # the view's key_by failed: same rule as a failing handler
            reason, source = failure_reason(exc), f"{msg.topic()}/{partition}/{msg.offset()}"
            if self.settings.view_errors == "halt":
                raise HaltProjection(
                    f"{self.runtime.context.name}.{self.view.name} v{self._labels[2]} repartition: "
                    f"{source}: {reason}: {exc}"
                ) from exc
            headers = [(k, v or b"") for k, v in (msg.headers() or [])]
            headers += [
                (h.DLQ_REASON, reason.encode()),
                (h.DLQ_DETAIL, str(exc).encode()[:4000]),
                (h.DLQ_SOURCE, source.encode()),
                ("view_version", self._labels[2].encode()),
            ]
            batch.produce(self.dlq, None, msg.key(), msg.value(), headers)
            metrics.VIEW_DLQ.labels(*self._labels, reason).inc()
            return
        if key != previous:
            batch.put(partition, map_key, None if key is None else key.encode())
        if key is None:
            return  # by the view's own rule, this aggregate has no document (yet)
        encoded = key.encode()
        headers = [(k, v or b"") for k, v in (msg.headers() or [])]
        _, ts = msg.timestamp()
        batch.produce(self.output, partition_for(encoded, self.partitions), encoded, msg.value(), headers, ts)


class HistoryIndexer(Stage):
    """Per-aggregate index of the log: (aggregate id, version) -> offset and time, plus
    (aggregate id, snapshot version) -> offset in `<ctx>.snapshots`. Kafka has no key index."""

    label = "history"

    def handle(self, msg: Message, batch: Batch) -> None:
        partition = msg.partition()
        aggregate_id = (msg.key() or b"").decode("utf-8", "replace")
        if msg.topic() == self.runtime.topics.snapshots:
            try:
                snapshot = self.runtime.codec.decode(msg.value()).message
            except DecodeError:
                return  # the index only points at what can be read back
            key = history_key(aggregate_id, snapshot.version, SNAPSHOT_PREFIX)
            batch.put(partition, key, _VERSION.pack(msg.offset()))
            return
        meta = h.pick(msg.headers(), _INDEX_HEADERS)
        try:
            version = int(meta[h.AGGREGATE_VERSION])
        except (KeyError, ValueError):
            return
        occurred = iso_to_ms(meta.get(h.OCCURRED_AT, ""))
        batch.put(partition, history_key(aggregate_id, version), _PAIR.pack(msg.offset(), occurred))

    def lookup(self, partition: int, aggregate_id: str) -> list[tuple[int, int, int]]:
        """(version, offset, occurred_at ms) of every event of the aggregate, by version."""
        store = self.stores.get(partition)
        if store is None:
            return []
        prefix = HISTORY_PREFIX + aggregate_id.encode() + b"\x00"
        return [(version_of_key(k), *_PAIR.unpack(v)) for k, v in store.scan(prefix)]

    def snapshot_at_or_before(
        self, partition: int, aggregate_id: str, version: int
    ) -> tuple[int, int] | None:
        """(snapshot version, snapshots-topic offset) of the latest snapshot <= version."""
        store = self.stores.get(partition)
        if store is None:
            return None
        prefix = SNAPSHOT_PREFIX + aggregate_id.encode() + b"\x00"
        found = store.last_before(prefix, history_key(aggregate_id, version, SNAPSHOT_PREFIX))
        if found is None:
            return None
        return version_of_key(found[0]), int(_VERSION.unpack(found[1])[0])
