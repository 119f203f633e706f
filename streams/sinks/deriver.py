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

import logging
import threading
from typing import Any

from confluent_kafka import Producer

from streams.config import Settings
from streams.kafka import clients
from streams.kafka.clients import take
from streams.kafka.hosting import restart_loop
from streams.kafka.runtime import ContextRuntime, ensure_topics
from streams.sinks.rows import ReadModelKey, event_row, readmodel_row, sink_codec, snapshot_row
from streams.wire import headers as h
from streams.wire.codec import AvroCodec, DecodeError
from streams.wire.generic import GenericDecoder

log = logging.getLogger(__name__)


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
        """Run the copy loop until stopped; a failure restarts it with back-off."""
        restart_loop(f"sink deriver for {self.runtime.context.name}", self._copy, self._stop)

    def _copy(self) -> None:
        """Consume, derive, produce, flush, commit (view topics created later are picked up by
        librdkafka's metadata refresh)."""
        if self._codec is None:
            self._codec = sink_codec(self.settings)
        ensure_topics(self.settings, self.runtime.topics.sink_specs(self.settings.partitions))
        consumer = clients.group_consumer(
            self.settings,
            self.runtime.groups.sink,
            # commit() below commits the positions of what was consumed
            overrides={"enable.auto.offset.store": True, "topic.metadata.refresh.interval.ms": 10000},
        )
        producer = clients.producer(self.settings)
        consumer.subscribe(self._subscription())
        who = f"sink deriver for {self.runtime.context.name}"
        try:
            while not self._stop.is_set():
                batch = clients.records(take(consumer, 500, 0.2), who)
                for msg in batch:
                    self._derive(producer, msg)
                if not batch:
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
