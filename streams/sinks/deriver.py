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

Nothing reaches the JDBC sink that PostgreSQL would refuse: a refused row fails the Connect task
for good (the Debezium sink does not report errant records). A record whose row would be refused
(`rows.sink_problem`: an id past `VARCHAR(255)`, U+0000, a version past `INT`) or that cannot be
derived goes to `<ctx>.dlq` with `dlq_stage: sink` instead; Connect's own dead-letter queue
(`<ctx>.connect-dlq`, `errors.tolerance: all`) takes what its converter cannot read.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams import metrics
from streams.config import Settings
from streams.kafka import clients
from streams.kafka.clients import is_poison, take
from streams.kafka.hosting import restart_loop
from streams.kafka.runtime import ContextRuntime, ensure_topics
from streams.sinks.rows import ReadModelKey, event_row, readmodel_row, sink_codec, sink_problem, snapshot_row
from streams.sinks.views import ViewSources, stale_rows
from streams.wire import headers as h
from streams.wire.codec import AvroCodec, DecodeError
from streams.wire.dlq import dead_letter, source_of
from streams.wire.generic import GenericDecoder
from streams.wire.topics import record_size

log = logging.getLogger(__name__)


class SinkDeriver:
    """Copies one context's events, snapshots and read models into its sink topics (a thread)."""

    def __init__(self, settings: Settings, runtime: ContextRuntime) -> None:
        self.settings = settings
        self.runtime = runtime
        # registered by the copy loop, which retries while the registry is down
        self._codec: AvroCodec | None = None
        self.generic = GenericDecoder(runtime.codec.registry)
        self._stop = threading.Event()
        self.views = ViewSources(settings, runtime)
        self._producer: Producer | None = None

    @property
    def codec(self) -> AvroCodec:
        """The sink rows' codec (registered on the first pass of the copy loop)."""
        assert self._codec is not None, "the copy loop registers the sink schemas first"
        return self._codec

    def stop(self) -> None:
        """Ask the loop to finish its batch and exit."""
        self._stop.set()

    def _subscription(self) -> list[str]:
        views = [source.topic for source in self.views.sources()]
        return [self.runtime.topics.events, self.runtime.topics.snapshots, *views]

    def run(self) -> None:
        """Run the copy loop until stopped; a failure restarts it with back-off."""
        restart_loop(f"sink deriver for {self.runtime.context.name}", self._copy, self._stop)

    def _copy(self) -> None:
        """Consume, derive, produce, flush, commit (view topics created later are picked up by
        librdkafka's metadata refresh). A view switched to another version by `streams replay`
        is copied from its new topic on (see `streams.sinks.views`)."""
        if self._codec is None:
            self._codec = sink_codec(self.settings)
        ensure_topics(self.settings, self.runtime.topics.sink_specs(self.settings.partitions))
        consumer = clients.group_consumer(
            self.settings,
            self.runtime.groups.sink,
            # commit() below commits the positions of what was consumed
            overrides={"enable.auto.offset.store": True, "topic.metadata.refresh.interval.ms": 10000},
        )
        producer = self._producer = clients.producer(self.settings, errors_only=True)
        self.views.load()
        consumer.subscribe(self._subscription(), on_assign=self._on_assign)
        who = f"sink deriver for {self.runtime.context.name}"
        try:
            while not self._stop.is_set():
                if self.views.poll():
                    consumer.subscribe(self._subscription(), on_assign=self._on_assign)
                batch = clients.records(take(consumer, 500, 0.2), who)
                if batch:
                    self._copy_batch(producer, batch)
                    consumer.commit(asynchronous=False)
        finally:
            consumer.close()
            self.views.close()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Before copying a view version's partitions for the first time (the group has no
        offset for them), delete the rows of their documents that this version does not hold."""
        fresh: dict[str, list[int]] = {}
        view_topics = {source.topic for source in self.views.sources()}
        candidates = [tp for tp in partitions if tp.topic in view_topics]
        if not candidates:
            return
        for tp in consumer.committed(candidates, timeout=30):
            if tp.offset < 0:
                fresh.setdefault(tp.topic, []).append(tp.partition)
        for topic, numbers in fresh.items():
            source = self.views.by_topic(topic)
            if source is None:
                continue
            stale = stale_rows(self.settings, self.runtime, self.codec, source, numbers)
            assert self._producer is not None
            for key in stale:
                self._producer.produce(self.runtime.topics.readmodels_sink, None, key)
            if self._producer.flush(30):
                raise RuntimeError("stale read-model rows not deleted within 30 s")
            if stale:
                log.info(
                    "sink deriver: deleted %d rows %s v%d does not hold",
                    len(stale),
                    source.name,
                    source.version,
                )

    def _copy_batch(self, producer: Producer, batch: list[Message]) -> None:
        """Derive every record's row; a row the broker refuses for what it is sends its source
        record to the DLQ (`output_rejected`); any other failure restarts the session."""
        refused: list[tuple[KafkaError, Message]] = []
        for msg in batch:
            self._derive(producer, msg, refused)
        if producer.flush(30):
            raise RuntimeError("sink records not acknowledged within 30 s")
        if not refused:
            return
        if not all(is_poison(err) for err, _ in refused):
            raise RuntimeError(f"sink records not acknowledged: {refused[0][0].str()}")
        for err, msg in refused:
            self._reject(producer, msg, "output_rejected", f"the broker refused its row: {err.str()}")
        if producer.flush(30):
            raise RuntimeError("DLQ records not acknowledged within 30 s")

    def _derive(self, producer: Producer, msg: Message, refused: list[tuple[KafkaError, Message]]) -> None:
        """Produce the row of one record, or dead-letter the record with the reason it has none
        (undecodable, or a row PostgreSQL would refuse: see `sink_problem`)."""
        topics = self.runtime.topics
        topic = msg.topic()
        key = msg.key() or b""
        try:
            if topic == topics.events:
                headers = h.as_dict(msg.headers())
                if h.EVENT_ID not in headers:
                    return self._reject(producer, msg, "unsupported_by_sink", "no event_id header")
                where = {"topic": topic, "partition": msg.partition(), "offset": msg.offset()}
                row: Any = event_row(self.runtime, msg.value(), headers, where)
                target, sink_key = topics.events_sink, row.EventID.encode()
            elif topic == topics.snapshots:
                row = snapshot_row(self.runtime, msg.value())
                target, sink_key = topics.snapshots_sink, key
            else:
                source = self.views.by_topic(topic)
                if source is None:
                    return None  # a view version no longer served (a replay switched it)
                target = topics.readmodels_sink
                read_model_key = ReadModelKey(key.decode(), source.entity_type)
                problem = sink_problem(read_model_key)
                if problem:
                    return self._reject(producer, msg, "unsupported_by_sink", problem)
                sink_key = self.codec.encode(read_model_key)
                if msg.value() is None:  # tombstone: delete the row
                    return self._produce(producer, msg, target, None, sink_key, refused)
                row = readmodel_row(self.generic.decode(msg.value())[1])
        except (DecodeError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            reason = exc.reason if isinstance(exc, DecodeError) else "underivable"
            return self._reject(producer, msg, reason, f"{type(exc).__name__}: {exc}")
        problem = sink_problem(row)
        if problem:
            return self._reject(producer, msg, "unsupported_by_sink", problem)
        value = self.codec.encode(row)
        size = record_size(sink_key, value)
        if size > self.settings.max_message_bytes:
            detail = f"its row would take {size} bytes (the topic's limit: {self.settings.max_message_bytes})"
            return self._reject(producer, msg, "output_too_large", detail)
        return self._produce(producer, msg, target, value, sink_key, refused)

    def _produce(
        self,
        producer: Producer,
        source: Message,
        topic: str,
        value: bytes | None,
        key: bytes,
        refused: list[tuple[KafkaError, Message]],
    ) -> None:
        def failed(err: KafkaError | None, _record: Message) -> None:
            if err is not None:
                refused.append((err, source))

        try:
            producer.produce(topic, value, key, on_delivery=failed)
        except KafkaException as exc:  # refused before it left: too large for the client
            refused.append((exc.args[0], source))
        producer.poll(0)

    def _reject(self, producer: Producer, msg: Message, reason: str, detail: str) -> None:
        """The source record to the context's DLQ, marked as the sink deriver's."""
        source = source_of(msg.topic(), msg.partition(), msg.offset())
        letter = dead_letter(
            key=msg.key(), value=msg.value(), headers=msg.headers(), reason=reason, detail=detail,
            source=source, dlq_stage="sink",
        )  # fmt: skip
        producer.produce(self.runtime.topics.dlq, letter.value, letter.key, headers=letter.headers)
        metrics.DLQ.labels(self.runtime.context.name, reason).inc()
        log.warning("sink deriver: %s to DLQ: %s (%s)", source, reason, detail[:200])
