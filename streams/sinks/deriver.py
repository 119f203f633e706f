"""Sink topics for Kafka Connect: the log's per-type Avro records reshaped into flat rows.

The JDBC sink maps one Connect schema to one table, but `<ctx>.events` holds one Avro record type
per event type, with the metadata in headers. A deriver inside the worker therefore reads the
log (read_committed) and writes, per context:

| from                 | to                          | key                           | table              |
|----------------------|-----------------------------|-------------------------------|--------------------|
| `<ctx>.events`       | `<ctx>.events-sink`         | event id (string)             | `EventStore`       |
| `<ctx>.snapshots`    | `<ctx>.snapshots-sink`      | aggregate id (string)         | `GenericSnapshots` |
| `<ctx>.<view>` (each)| `<ctx>.readmodels-sink`     | `ReadModelKey` (Avro)         | `GenericReadModel` |

JSON columns are Avro strings typed `io.debezium.data.Json`, which the Debezium JDBC sink binds as
JSON (so `EventData->>'field'` works). It is at-least-once (offsets are committed after the
derived records are acknowledged); the connectors upsert on the key, so a repeat is harmless.
It is a plain consumer thread rather than a Faust agent because Faust's consumer reads
`read_uncommitted` unless the whole app runs Faust's exactly-once mode: an agent would copy the
events of aborted transactions into the tables.
"""

from __future__ import annotations

import io
import json
import logging
import struct
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import fastavro
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.config import Settings
from streams.kafka.runtime import ContextRuntime, ensure_topics, take
from streams.wire import headers as h
from streams.wire.codec import AvroCodec, DecodeError
from streams.wire.jsonable import json_bytes, to_json
from streams.wire.schemas import SCHEMAS_DIR, SchemaCatalog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventStoreRow:
    """A row of EventStore (schema `streams.sink.EventStoreRow`)."""

    EventID: str
    AggregateID: str
    AggregateType: str
    EventType: str
    EventData: str
    Metadata: str
    Timestamp: int
    Version: int


@dataclass(frozen=True)
class ReadModelKey:
    """Primary key of GenericReadModel: entity id and read-model type (`<ctx>.<view>`)."""

    EntityID: str
    EntityType: str


@dataclass(frozen=True)
class ReadModelRow:
    """The non-key columns of GenericReadModel."""

    State: str
    LastEventVersion: int
    LastUpdated: int


@dataclass(frozen=True)
class SnapshotRow:
    """A row of GenericSnapshots."""

    AggregateID: str
    AggregateType: str
    SnapshotData: str
    LastEventVersion: int
    Timestamp: int


SINK_TYPES: tuple[type, ...] = (EventStoreRow, ReadModelKey, ReadModelRow, SnapshotRow)


def sink_codec(settings: Settings) -> AvroCodec:
    """A codec for the sink row types (registered under their record names)."""
    catalog = SchemaCatalog([SCHEMAS_DIR / "streams"], SINK_TYPES)
    return AvroCodec.connect(catalog, settings.registry_url)


def iso_to_millis(value: Any) -> int:
    """Epoch millis from an ISO-8601 string (or a number already in millis); 0 when unknown."""
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value:
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return 0
    return 0


class GenericDecoder:
    """Confluent-wire Avro -> dict for records of types we have no class for (read models)."""

    _HEADER = struct.Struct(">bI")

    def __init__(self, registry: SchemaRegistryClient) -> None:
        self.registry = registry
        self._schemas: dict[int, tuple[str, Any]] = {}

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        """The record's full type name and its fields."""
        if len(data) < self._HEADER.size or data[0] != 0:
            raise DecodeError("not Confluent Avro wire format")
        _, schema_id = self._HEADER.unpack_from(data)
        if schema_id not in self._schemas:
            raw = json.loads(self.registry.get_schema(schema_id).schema_str or "")
            name = raw.get("name", "")
            if raw.get("namespace") and "." not in name:
                name = f"{raw['namespace']}.{name}"
            self._schemas[schema_id] = (name, fastavro.parse_schema(raw, named_schemas={}))
        name, parsed = self._schemas[schema_id]
        record = fastavro.schemaless_reader(io.BytesIO(data[self._HEADER.size :]), parsed, None)
        return name, dict(record)  # type: ignore[arg-type]


def json_text(value: Any) -> str:
    """A JSON document as text: strings are taken as JSON already (checked), others dumped."""
    if isinstance(value, str):
        json.loads(value)
        return value
    return json_bytes(value).decode()


def event_row(runtime: ContextRuntime, value: bytes, headers: dict[str, str], where: dict[str, Any]) -> Any:
    """EventStoreRow of one `<ctx>.events` record."""
    decoded = runtime.codec.decode(value)
    metadata = {k: v for k, v in headers.items() if k not in (h.EVENT_ID, h.EVENT_TYPE)}
    metadata.update(where)
    return EventStoreRow(
        EventID=headers[h.EVENT_ID],
        AggregateID=headers.get(h.AGGREGATE_ID, ""),
        AggregateType=headers.get(h.AGGREGATE_TYPE, runtime.context.aggregate_type),
        EventType=headers.get(h.EVENT_TYPE, decoded.type_name),
        EventData=json_bytes(to_json(decoded.message)).decode(),
        Metadata=json_bytes(metadata).decode(),
        Timestamp=iso_to_millis(headers.get(h.OCCURRED_AT)),
        Version=int(headers.get(h.AGGREGATE_VERSION, "0")),
    )


def snapshot_row(runtime: ContextRuntime, value: bytes) -> Any:
    """SnapshotRow of one `<ctx>.snapshots` record (its state decoded to JSON)."""
    snapshot = runtime.codec.decode(value).message
    state = runtime.codec.decode(snapshot.state).message
    return SnapshotRow(
        AggregateID=snapshot.aggregate_id,
        AggregateType=snapshot.aggregate_type,
        SnapshotData=json_bytes(to_json(state)).decode(),
        LastEventVersion=snapshot.version,
        Timestamp=iso_to_millis(snapshot.taken_at),
    )


def readmodel_row(document: dict[str, Any]) -> Any:
    """ReadModelRow of a read-model document (`streams.ReadModelDocument`-like record)."""
    return ReadModelRow(
        State=json_text(document.get("state", "{}")),
        LastEventVersion=int(document.get("last_event_version", 0) or 0),
        LastUpdated=iso_to_millis(document.get("last_updated")) or int(time.time() * 1000),
    )


def view_topics(settings: Settings, runtime: ContextRuntime) -> list[str]:
    """The read-model topics to copy: the context's declared views (version 1 topics), or the
    view names in `STREAMS_SINK_VIEWS` when set."""
    names = settings.sink_views or tuple(view.name for view in runtime.context.views)
    return [runtime.topics.view(name) for name in names]


class SinkDeriver:
    """Copies one context's events, snapshots and read models into its sink topics (a thread)."""

    def __init__(self, settings: Settings, runtime: ContextRuntime) -> None:
        self.settings = settings
        self.runtime = runtime
        # registered by the copy loop, which retries while the registry is down
        self._codec: AvroCodec | None = None
        self.generic = GenericDecoder(runtime.codec.registry)
        self._stop = threading.Event()
        self._views: list[str] = []

    @property
    def codec(self) -> AvroCodec:
        """The sink rows' codec (registered on the first pass of the copy loop)."""
        assert self._codec is not None, "the copy loop registers the sink schemas first"
        return self._codec

    def stop(self) -> None:
        """Ask the loop to finish its batch and exit."""
        self._stop.set()

    def _subscription(self) -> list[str]:
        self._views = view_topics(self.settings, self.runtime)
        return [self.runtime.topics.events, self.runtime.topics.snapshots, *self._views]

    def run(self) -> None:
        """Run the copy loop; an unexpected error is logged and the loop restarts after 5 s."""
        while not self._stop.is_set():
            try:
                self._copy()
            except Exception:
                log.exception("sink deriver for %s failed; restarting in 5 s", self.runtime.context.name)
                self._stop.wait(5)

    def _copy(self) -> None:
        """Consume, derive, produce, flush, commit (view topics created later are picked up by
        librdkafka's metadata refresh)."""
        if self._codec is None:
            self._codec = sink_codec(self.settings)
        ensure_topics(self.settings, self.runtime.topics.sink_specs(self.settings.partitions))
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.bootstrap,
                "group.id": f"{self.settings.app_id}-sink-{self.runtime.context.name}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": 50,
                "topic.metadata.refresh.interval.ms": 10000,
            }
        )
        producer = Producer(
            {"bootstrap.servers": self.settings.bootstrap, "enable.idempotence": True, "linger.ms": 5}
        )
        consumer.subscribe(self._subscription())
        try:
            while not self._stop.is_set():
                copied = 0
                for msg in take(consumer, 500, 0.2):
                    if msg.error() is not None:
                        if msg.error().code() != KafkaError._PARTITION_EOF:
                            log.debug("sink deriver: %s", msg.error())  # e.g. a view topic not created yet
                        continue
                    self._derive(producer, msg)
                    copied += 1
                if not copied:
                    continue
                if producer.flush(30):
                    raise RuntimeError("sink records not acknowledged within 30 s")
                consumer.commit(asynchronous=False)
        finally:
            consumer.close()

    def _derive(self, producer: Producer, msg: Any) -> None:
        topic = msg.topic()
        key = msg.key() or b""
        try:
            if topic == self.runtime.topics.events:
                headers = h.as_dict(msg.headers())
                if h.EVENT_ID not in headers:
                    return
                where = {"topic": topic, "partition": msg.partition(), "offset": msg.offset()}
                row = event_row(self.runtime, msg.value(), headers, where)
                producer.produce(
                    self.runtime.topics.events_sink, self.codec.encode(row), row.EventID.encode()
                )
            elif topic == self.runtime.topics.snapshots:
                row = snapshot_row(self.runtime, msg.value())
                producer.produce(self.runtime.topics.snapshots_sink, self.codec.encode(row), key)
            else:
                entity_type = topic.removeprefix(self.settings.topic_prefix)
                sink_key = self.codec.encode(ReadModelKey(key.decode(), entity_type))
                if msg.value() is None:
                    producer.produce(self.runtime.topics.readmodels_sink, None, sink_key)  # tombstone: delete
                else:
                    _, document = self.generic.decode(msg.value())
                    row = readmodel_row(document)
                    producer.produce(self.runtime.topics.readmodels_sink, self.codec.encode(row), sink_key)
        except (DecodeError, ValueError, KeyError, TypeError) as exc:
            # The write side sends undecodable input to its DLQ; here we only skip and say so.
            log.warning("sink deriver skips %s[%d]@%d: %s", topic, msg.partition(), msg.offset(), exc)
        producer.poll(0)


def _connect_runtime(settings: Settings, name: str) -> ContextRuntime:
    return ContextRuntime.connect(settings, name, retry_for_s=300)


def register_sinks(app: Any, settings: Settings) -> None:
    """Run one SinkDeriver thread per context in the worker (unless `STREAMS_SINKS=0`)."""
    if not settings.sinks_enabled:
        return
    import asyncio

    from mode import Service

    @app.service
    class SinkDerivers(Service):
        """The sink derivers of every configured context."""

        derivers: list[SinkDeriver]
        threads: list[threading.Thread]

        def __post_init__(self) -> None:
            self.derivers = []
            self.threads = []

        async def on_start(self) -> None:
            loop = asyncio.get_running_loop()
            for name in settings.contexts:
                runtime = await loop.run_in_executor(None, _connect_runtime, settings, name)
                deriver = await loop.run_in_executor(None, SinkDeriver, settings, runtime)
                thread = threading.Thread(target=deriver.run, name=f"sink-{name}", daemon=True)
                thread.start()
                self.derivers.append(deriver)
                self.threads.append(thread)

        async def on_stop(self) -> None:
            for deriver in self.derivers:
                deriver.stop()
            loop = asyncio.get_running_loop()
            for thread in self.threads:
                await loop.run_in_executor(None, thread.join, 30)
