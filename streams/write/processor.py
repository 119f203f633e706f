"""The write side: commands in, events out, exactly once.

One loop per context consumes `<ctx>.commands` in batches. A batch is one Kafka transaction
holding its events, results, DLQ records, state changelog and the input offsets, so a
`read_committed` reader sees each accepted command's events exactly once, whatever crashes.
Zombie workers are fenced by the consumer-group generation (KIP-447); a stable transactional id
per worker lets a restarted worker abort what its previous life left open.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams import metrics
from streams.config import Settings
from streams.core.commands import (
    Aggregate,
    AggregateSnapshot,
    CommandEnvelope,
    CommandResult,
    handle_command,
    utc_now,
)
from streams.kafka.runtime import ContextRuntime, ensure_topics, is_fatal, take, watermarks
from streams.kafka.store import AGGREGATE_PREFIX, COMMAND_PREFIX, PartitionStore
from streams.wire import headers as h
from streams.wire.codec import DecodeError, RegistryUnavailable
from streams.wire.schemas import to_record
from streams.wire.topics import TopicSpec
from streams.write.appends import EventAppend, OffsetsMispredicted, RetryBatch

log = logging.getLogger(__name__)
_VERSION = struct.Struct(">q")


def _partition(msg: Message) -> int:
    partition = msg.partition()
    assert partition is not None, "consumed records always have a partition"
    return partition


def _bytes(value: str | bytes | None) -> bytes:
    return value.encode() if isinstance(value, str) else (value or b"")


class StuckClient(Exception):
    """A librdkafka call did not return in time; its clients must be abandoned."""


CALL_TIMEOUT_S = 20.0


def bounded(what: str, call: Callable[[], Any], timeout: float = CALL_TIMEOUT_S) -> Any:
    """Run a blocking client call, giving up after `timeout`.

    librdkafka's `send_offsets_to_transaction` can block forever, past its own timeout, when
    the group coordinator restarts (librdkafka #5456, #5511). The caller then drops the clients;
    the next producer with the same transactional id fences the stuck one.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name=f"call-{what}", daemon=True).start()
    if not done.wait(timeout):
        raise StuckClient(f"{what} did not return within {timeout:.0f}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def changelog_topic(runtime: ContextRuntime) -> str:
    """The compacted topic mirroring the handler's RocksDB state."""
    return f"{runtime.topics.prefix}{runtime.context.name}.aggregates-changelog"


def encode_aggregate(runtime: ContextRuntime, aggregate: Aggregate[Any]) -> bytes:
    """Version (8 bytes) followed by the state in Avro."""
    return _VERSION.pack(aggregate.version) + runtime.codec.encode(aggregate.state)


def decode_aggregate(runtime: ContextRuntime, raw: bytes) -> Aggregate[Any]:
    """Inverse of `encode_aggregate`."""
    (version,) = _VERSION.unpack_from(raw)
    return Aggregate(version, runtime.codec.decode(raw[_VERSION.size :]).message)


@dataclass
class _Pending:
    """What one batch will write, kept apart from RocksDB until the transaction commits.

    Aggregates and results stay objects until the batch is produced, so an aggregate touched
    by several commands of a batch is decoded at most once and encoded once.
    """

    processed_at: str
    watch: frozenset[tuple[int, bytes]] = frozenset()
    """Aggregates whose state is checked against the size limit after each command."""
    aggregates: dict[int, dict[bytes, Aggregate[Any]]] = field(default_factory=dict)
    seen_commands: dict[int, dict[bytes, CommandResult]] = field(default_factory=dict)
    events: list[tuple[int, bytes, bytes, list[tuple[str, bytes]], str]] = field(default_factory=list)
    """(partition, key, value, headers, event type) of each event to append."""
    results: list[tuple[int, CommandResult, list[int]]] = field(default_factory=list)
    dlq: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = field(default_factory=list)
    offsets: dict[int, int] = field(default_factory=dict)
    timestamps: list[float] = field(default_factory=list)
    snapshots: list[tuple[int, str, Aggregate[Any], int]] = field(default_factory=list)


class CommandProcessor:
    """Consumes one context's commands and appends its events transactionally."""

    def __init__(
        self,
        settings: Settings,
        runtime: ContextRuntime,
        *,
        worker_id: str,
        max_batch: int = 1000,
        cache_size: int = 20000,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.context = runtime.context
        self.name = runtime.context.name
        self.topics = runtime.topics
        self.changelog = changelog_topic(runtime)
        self.max_batch = max_batch
        self.group_id = f"{settings.app_id}.{runtime.topics.prefix}{self.name}.handler"
        self.transactional_id = f"{self.group_id}.{worker_id}"
        self.data_dir = Path(settings.data_dir) / worker_id / f"{runtime.topics.prefix}{self.name}"
        self.stores: dict[int, PartitionStore] = {}
        self.exactly_once = settings.exactly_once
        self.max_state = settings.max_state_bytes
        # committed aggregates recently used, so hot ones skip RocksDB and Avro decoding
        self._cache: OrderedDict[tuple[int, bytes], Aggregate[Any]] = OrderedDict()
        self.cache_size = cache_size
        # where each events partition's next record will land: a transaction's events get
        # consecutive offsets and its commit marker one more (checked before every commit)
        self._next_event_offset: dict[int, int] = {}
        self._stop = threading.Event()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self.on_batch: Callable[[int], None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def ensure_topics(self) -> None:
        """The context's topics plus the state changelog (same partition count as commands)."""
        specs = self.topics.specs(self.settings.partitions)
        specs.append(TopicSpec(self.changelog, self.settings.partitions, {"cleanup.policy": "compact"}))
        ensure_topics(self.settings, specs)

    def stop(self) -> None:
        """Ask the loop to finish its current batch and leave the group."""
        self._stop.set()

    def run(self) -> None:
        """Process until `stop()`; transient failures are retried with back-off."""
        self.ensure_topics()
        delay = 0.5
        while not self._stop.is_set():
            try:
                self._run_session()
                delay = 0.5
            except Exception:
                log.exception("%s handler failed; restarting in %.1fs", self.name, delay)
                metrics.RETRIES.labels(self.name, "session").inc()
                self._close_clients()
                self._stop.wait(delay)
                delay = min(delay * 2, 15.0)
        self._close_clients()

    def _run_session(self) -> None:
        bootstrap = self.settings.bootstrap
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "message.max.bytes": 4 * 1024 * 1024,
            # A transaction begun right after the previous commit meets CONCURRENT_TRANSACTIONS
            # until the coordinator has written the commit markers; librdkafka's default 100 ms
            # back-off then lands in the next batch's latency (the Java client retries after 20).
            "retry.backoff.ms": 10,
        }
        if self.exactly_once:
            config.update({"transactional.id": self.transactional_id, "transaction.timeout.ms": 30000})
        self._producer = Producer(config)
        if self.exactly_once:
            self._producer.init_transactions(30)
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": self.group_id,
                # static membership: a restarted worker takes its partitions back at once
                "group.instance.id": self.transactional_id,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "partition.assignment.strategy": "range",
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 1000,
                "max.poll.interval.ms": 120000,
                "fetch.wait.max.ms": 20,
            }
        )
        self._consumer.subscribe([self.topics.commands], on_assign=self._on_assign, on_revoke=self._on_revoke)
        wait = max(self.settings.commit_interval_s, 0.005)
        while not self._stop.is_set():
            batch = take(self._consumer, self.max_batch, wait)
            messages = [m for m in batch if m.error() is None]
            for m in batch:
                err = m.error()
                if err is not None and err.code() != KafkaError._PARTITION_EOF:
                    if is_fatal(err):
                        raise KafkaException(err)
                    log.warning("%s consumer: %s", self.name, err)
            if messages:
                self._process_with_retry(messages)

    def _close_clients(self) -> None:
        if self._consumer is not None:
            consumer = self._consumer
            try:
                bounded("consumer close", consumer.close, timeout=15)
            except Exception:
                log.warning("%s: consumer close failed; abandoning it", self.name, exc_info=True)
            self._consumer = None
        self._producer = None
        for store in self.stores.values():
            store.close()
        self.stores.clear()
        self._cache.clear()
        self._next_event_offset.clear()

    # --- rebalance -------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self.stores[tp.partition] = self._restore(tp.partition)
        log.info("%s: assigned %s", self.name, sorted(self.stores))

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {tp.partition for tp in partitions}
        for key in [k for k in self._cache if k[0] in revoked]:
            del self._cache[key]
        for tp in partitions:
            self._next_event_offset.pop(tp.partition, None)
            store = self.stores.pop(tp.partition, None)
            if store is not None:
                store.close()
        log.info("%s: revoked %s", self.name, [tp.partition for tp in partitions])

    def _restore(self, partition: int) -> PartitionStore:
        """Open the partition's RocksDB and replay the changelog past its checkpoint."""
        store = PartitionStore(self.data_dir / f"p{partition}")
        restorer = Consumer(
            {
                "bootstrap.servers": self.settings.bootstrap,
                "group.id": f"{self.group_id}.restore",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        try:
            tp = TopicPartition(self.changelog, partition)
            low, high = watermarks(restorer, tp)
            start = max(store.position(self.changelog), low)
            if start >= high:
                return store
            restorer.assign([TopicPartition(self.changelog, partition, start)])
            writes: dict[bytes, bytes | None] = {}
            position = start
            done = False
            while not done:
                for msg in restorer.consume(5000, timeout=1.0):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            done = True
                            continue
                        raise KafkaException(err)
                    writes[msg.key()] = msg.value()
                    position = msg.offset() + 1
                    if len(writes) >= 10000:
                        store.write(writes, {self.changelog: position})
                        writes = {}
            # the last committed offset may be a transaction marker: resume after it next time
            store.write(writes, {self.changelog: max(position, restorer.position([tp])[0].offset)})
            log.info("%s: partition %d restored from changelog %d..%d", self.name, partition, start, high)
            return store
        finally:
            restorer.close()

    # --- batches ---------------------------------------------------------------------------

    def _process_with_retry(self, messages: list[Message]) -> None:
        delay = 0.2
        while True:
            try:
                self._process_batch(messages)
                return
            except (RetryBatch, RegistryUnavailable, KafkaException) as exc:
                fatal = isinstance(exc, KafkaException) and is_fatal(exc.args[0])
                self._abort(forget_offsets=not isinstance(exc, OffsetsMispredicted))
                if fatal:
                    raise
                cause = type(exc).__name__
                metrics.RETRIES.labels(self.name, cause).inc()
                log.warning("%s: batch aborted (%s: %s); retrying in %.1fs", self.name, cause, exc, delay)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, 10.0)
                # the assignment may have changed while we waited
                assigned = {tp.partition for tp in self._consumer.assignment()} if self._consumer else set()
                messages = [m for m in messages if m.partition() in assigned]
                if not messages:
                    return

    def _abort(self, *, forget_offsets: bool) -> None:
        """Abort the open transaction; the caller retries the same records from memory (the
        consumer's position is left alone, so they are not consumed a second time)."""
        assert self._producer is not None
        producer = self._producer
        if forget_offsets:  # where the partitions end is read again before the retry
            self._next_event_offset.clear()
        try:
            if self.exactly_once:
                bounded("abort", lambda: producer.abort_transaction(30))
        except KafkaException as exc:
            if is_fatal(exc.args[0]):
                raise
            log.debug("abort: %s", exc)

    def _process_batch(self, messages: list[Message]) -> None:
        assert self._producer is not None and self._consumer is not None
        producer = self._producer
        pending = self._prepare(messages, frozenset())
        states = self._encode_states(pending)
        oversized = frozenset(
            (p, key) for p, encoded in states.items() for key, v in encoded.items() if len(v) > self.max_state
        )
        if oversized:  # decide again, rejecting the commands that would grow these states too far
            pending = self._prepare(messages, oversized)
            states = self._encode_states(pending)
        if not pending.offsets:
            return

        if self.exactly_once:
            producer.begin_transaction()
        events, writes, changelog_end = self._produce(pending, states)
        offsets = [TopicPartition(self.topics.commands, p, o) for p, o in pending.offsets.items()]
        if self.exactly_once:
            metadata = self._consumer.consumer_group_metadata()
            bounded("send_offsets", lambda: producer.send_offsets_to_transaction(offsets, metadata, 30))
            # every record is acknowledged by then: the commit has nothing left to send
            events.wait(CALL_TIMEOUT_S)
            events.check()
            self._commit()
            events.advance(marker=1)
        else:  # at least once: everything acknowledged, then the offsets
            if producer.flush(30):
                raise RetryBatch("records not acknowledged")
            consumer = self._consumer
            bounded("commit offsets", lambda: consumer.commit(offsets=offsets, asynchronous=False))
            events.advance(marker=0)
        # committed: now RocksDB and the cache may follow
        for partition, partition_writes in writes.items():
            store = self.stores.get(partition)
            if store is not None and partition in changelog_end:
                store.write(partition_writes, {self.changelog: changelog_end[partition]})
        self._remember(pending)
        self._count(pending, len(messages))

    def _produce(
        self, pending: _Pending, states: dict[int, dict[bytes, bytes]]
    ) -> tuple[EventAppend, dict[int, dict[bytes, bytes]], dict[int, int]]:
        """Produce everything a decided batch writes; (its events, the store writes per
        partition, the changelog's end offset per partition, filled in on acknowledgement)."""
        assert self._producer is not None
        producer = self._producer
        events = self._produce_events(pending)
        if not self.exactly_once:
            # no transaction to abort if a prediction were wrong: wait for the real offsets
            events.wait(CALL_TIMEOUT_S)
            events.learn_actual()
        codec = self.runtime.codec
        writes: dict[int, dict[bytes, bytes]] = {}
        for partition, encoded in states.items():
            target = writes.setdefault(partition, {})
            for key, value in encoded.items():
                target[AGGREGATE_PREFIX + key] = value
        for dlq_key, dlq_value, dlq_headers in pending.dlq:
            producer.produce(self.topics.dlq, dlq_value, dlq_key, headers=dlq_headers)
        event_offsets = events.offsets
        results_topic = self.topics.results
        for partition, result, indexes in pending.results:
            record = to_record(result)
            if indexes:
                record["event_offsets"] = [event_offsets[i] for i in indexes]
                record["event_partition"] = partition
            value = codec.encode_as(CommandResult, record)
            command_id = result.command_id.encode()
            producer.produce(results_topic, value, command_id, partition=partition)
            if not result.duplicate and result.aggregate_version >= 0:  # DLQ results are not kept
                writes.setdefault(partition, {})[COMMAND_PREFIX + command_id] = value
        for partition, aggregate_id, aggregate, last_event in pending.snapshots:
            snapshot = AggregateSnapshot(
                aggregate_id=aggregate_id,
                aggregate_type=self.context.aggregate_type,
                version=aggregate.version,
                state=codec.encode(aggregate.state),
                event_partition=partition,
                event_offset=event_offsets[last_event],
                taken_at=pending.processed_at,
            )
            producer.produce(
                self.topics.snapshots, codec.encode(snapshot), aggregate_id.encode(), partition=partition
            )
        changelog_end: dict[int, int] = {}

        def track(err: Any, record: Message) -> None:
            if err is None:
                p = record.partition()
                changelog_end[p] = max(changelog_end.get(p, 0), record.offset() + 1)

        # The store's changelog position is its last record's offset + 1. In a transaction only
        # that record is reported: a failure of any other fails the commit.
        for partition, partition_writes in writes.items():
            last = len(partition_writes) - 1
            for i, (key, value) in enumerate(partition_writes.items()):
                if i == last or not self.exactly_once:
                    producer.produce(self.changelog, value, key, partition=partition, on_delivery=track)
                else:
                    producer.produce(self.changelog, value, key, partition=partition)
        return events, writes, changelog_end

    def _produce_events(self, pending: _Pending) -> EventAppend:
        """Produce the batch's events, numbered from the predicted next offset of each partition."""
        assert self._producer is not None and self._consumer is not None
        producer = self._producer
        append = EventAppend(self._producer, self._next_event_offset, sparse=self.exactly_once)
        last_of = {e[0]: i for i, e in enumerate(pending.events)}
        for partition in last_of.keys() - self._next_event_offset.keys():
            _, high = watermarks(self._consumer, TopicPartition(self.topics.events, partition))
            self._next_event_offset[partition] = high
        events_topic = self.topics.events
        on_event = append.on_delivery
        for i, (partition, key, value, headers, _) in enumerate(pending.events):
            if append.number(partition, last=last_of[partition] == i):
                producer.produce(
                    events_topic, value, key, partition=partition, headers=headers, on_delivery=on_event
                )
            else:
                producer.produce(events_topic, value, key, partition=partition, headers=headers)
        return append

    def _prepare(self, messages: list[Message], watch: frozenset[tuple[int, bytes]]) -> _Pending:
        """Decide every command of a batch (nothing is produced yet)."""
        pending = _Pending(processed_at=utc_now(), watch=watch)
        for msg in messages:
            partition = _partition(msg)
            if partition not in self.stores:
                continue  # revoked meanwhile: its new owner processes it
            pending.offsets[partition] = msg.offset() + 1
            self._handle(msg, pending)
        return pending

    def _encode_states(self, pending: _Pending) -> dict[int, dict[bytes, bytes]]:
        """Each aggregate the batch changed, encoded once (its last state in the batch)."""
        return {
            partition: {key: encode_aggregate(self.runtime, a) for key, a in aggregates.items()}
            for partition, aggregates in pending.aggregates.items()
        }

    def _remember(self, pending: _Pending) -> None:
        cache = self._cache
        for partition, aggregates in pending.aggregates.items():
            for key, aggregate in aggregates.items():
                cache[(partition, key)] = aggregate
                cache.move_to_end((partition, key))
        while len(cache) > self.cache_size:
            cache.popitem(last=False)

    def _commit(self) -> None:
        assert self._producer is not None
        producer = self._producer
        while True:
            try:
                bounded("commit", lambda: producer.commit_transaction(30))
                return
            except KafkaException as exc:
                error = exc.args[0]
                if error.retriable():
                    continue
                if error.txn_requires_abort():
                    raise RetryBatch(f"commit needs abort: {error}") from exc
                raise

    def _count(self, pending: _Pending, n: int) -> None:
        name = self.name
        commands = Counter((r.command_type, r.status, r.reason) for _, r, _ in pending.results)
        for (command_type, status, reason), count in commands.items():
            metrics.COMMANDS.labels(name, command_type, status, reason).inc(count)
        for event_type, count in Counter(e[4] for e in pending.events).items():
            metrics.EVENTS.labels(name, event_type).inc(count)
        for dlq_reason, count in Counter(dict(hs)[h.DLQ_REASON] for _, _, hs in pending.dlq).items():
            metrics.DLQ.labels(name, dlq_reason.decode()).inc(count)
        now = time.time()
        latency = metrics.LATENCY.labels(name)
        for ts in pending.timestamps:
            latency.observe(max(now - ts, 0.0))
        metrics.BATCH.labels(name).observe(n)
        if self.on_batch is not None:
            self.on_batch(n)

    # --- one command -----------------------------------------------------------------------

    def _aggregate(self, pending: _Pending, partition: int, key: bytes) -> Aggregate[Any]:
        """The aggregate as this batch left it, else as committed (cache, then RocksDB)."""
        in_batch = pending.aggregates.get(partition, {}).get(key)
        if in_batch is not None:
            return in_batch
        cached = self._cache.get((partition, key))
        if cached is not None:
            return cached
        stored = self.stores[partition].get(AGGREGATE_PREFIX + key)
        if stored is None:
            return Aggregate(0, self.context.initial_state)
        return decode_aggregate(self.runtime, stored)

    def _seen(self, pending: _Pending, partition: int, command_id: bytes) -> CommandResult | None:
        """The first result of a command id, from this batch or the store."""
        in_batch = pending.seen_commands.get(partition, {}).get(command_id)
        if in_batch is not None:
            return in_batch
        stored = self.stores[partition].get(COMMAND_PREFIX + command_id)
        return None if stored is None else self.runtime.codec.decode(stored).message

    def _handle(self, msg: Message, pending: _Pending) -> None:
        partition = _partition(msg)
        raw_key, raw_value = msg.key(), msg.value()
        meta = h.as_dict(msg.headers())
        _, ts = msg.timestamp()
        if ts > 0:
            pending.timestamps.append(ts / 1000.0)
        if not raw_key:
            return self._dead_letter(msg, pending, "missing_aggregate_id", "the record has no key")
        size = len(raw_value or b"")
        if size > self.settings.max_record_bytes:
            return self._dead_letter(
                msg, pending, "oversized_record", f"{size} bytes > limit of {self.settings.max_record_bytes}"
            )
        try:
            aggregate_id = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            return self._dead_letter(msg, pending, "malformed_key", "the key is not UTF-8")
        command_id = meta.get(h.COMMAND_ID) or f"{msg.topic()}/{partition}/{msg.offset()}"
        original = self._seen(pending, partition, command_id.encode())
        if original is not None:
            pending.results.append((partition, replace(original, duplicate=True), []))
            return None
        try:
            decoded = self.runtime.codec.decode(raw_value)
        except DecodeError as exc:
            return self._dead_letter(msg, pending, exc.reason, str(exc))
        current = self._aggregate(pending, partition, raw_key)
        if decoded.type_name not in self.context.command_names:
            return self._reject(
                pending, partition, command_id, aggregate_id, decoded.type_name, current,
                "unknown_command_type", f"{decoded.type_name} is not a command of {self.name}",
            )  # fmt: skip
        expected_raw = meta.get(h.EXPECTED_VERSION)
        try:
            expected = int(expected_raw) if expected_raw not in (None, "") else None
        except ValueError:
            return self._reject(
                pending, partition, command_id, aggregate_id, decoded.type_name, current,
                "invalid_expected_version", f"{expected_raw!r} is not an integer",
            )  # fmt: skip
        envelope = CommandEnvelope(
            command_id=command_id,
            aggregate_id=aggregate_id,
            command=decoded.message,
            expected_version=expected,
            correlation_id=meta.get(h.CORRELATION_ID, ""),
            actor=meta.get(h.ACTOR, ""),
        )
        outcome = handle_command(self.context, current, envelope, pending.processed_at)
        if outcome.events and (partition, raw_key) in pending.watch:
            size = len(encode_aggregate(self.runtime, outcome.aggregate))
            if size > self.max_state:
                return self._reject(
                    pending, partition, command_id, aggregate_id, decoded.type_name, current,
                    "aggregate_too_large",
                    f"the state would reach {size} bytes (limit {self.max_state}, STREAMS_MAX_STATE_BYTES)",
                )  # fmt: skip
        indexes: list[int] = []
        codec = self.runtime.codec
        for version, event in outcome.events:
            event_type = type(event).__name__
            headers = h.event_headers(
                event_type=event_type,
                schema_version=codec.version_of(type(event)),
                aggregate_type=self.context.aggregate_type,
                aggregate_id=aggregate_id,
                aggregate_version=version,
                command_id=command_id,
                correlation_id=envelope.correlation_id,
                occurred_at=pending.processed_at,
                actor=envelope.actor,
            )
            indexes.append(len(pending.events))
            pending.events.append((partition, raw_key, codec.encode(event), headers, event_type))
        if outcome.events:
            pending.aggregates.setdefault(partition, {})[raw_key] = outcome.aggregate
            every = self.settings.snapshot_every
            if every > 0 and outcome.aggregate.version // every > current.version // every:
                pending.snapshots.append((partition, aggregate_id, outcome.aggregate, indexes[-1]))
        self._result(pending, partition, outcome.result, indexes)
        return None

    def _result(
        self, pending: _Pending, partition: int, result: CommandResult, indexes: list[int] | None = None
    ) -> None:
        """Publish a command's first result and remember it for repeated command ids."""
        pending.results.append((partition, result, indexes or []))
        pending.seen_commands.setdefault(partition, {})[result.command_id.encode()] = result

    def _reject(
        self,
        pending: _Pending,
        partition: int,
        command_id: str,
        aggregate_id: str,
        command_type: str,
        current: Aggregate[Any],
        reason: str,
        detail: str,
    ) -> None:
        result = CommandResult(
            command_id=command_id,
            aggregate_id=aggregate_id,
            command_type=command_type,
            status="rejected",
            aggregate_version=current.version,
            reason=reason,
            detail=detail,
            processed_at=pending.processed_at,
        )
        self._result(pending, partition, result)

    def _dead_letter(self, msg: Message, pending: _Pending, reason: str, detail: str) -> None:
        """Keep the record's bytes with the reason. A waiting client gets a `rejected` result,
        which is not remembered: the same command id sent again, well-formed, is processed."""
        headers = [(k, _bytes(v)) for k, v in (msg.headers() or [])]
        headers += [
            (h.DLQ_REASON, reason.encode()),
            (h.DLQ_DETAIL, detail.encode()),
            (h.DLQ_SOURCE, f"{msg.topic()}/{msg.partition()}/{msg.offset()}".encode()),
        ]
        pending.dlq.append((msg.key(), msg.value(), headers))
        command_id = h.as_dict(headers).get(h.COMMAND_ID)
        if command_id:
            result = CommandResult(
                command_id=command_id,
                aggregate_id=(msg.key() or b"").decode("utf-8", "replace"),
                command_type="",
                status="rejected",
                aggregate_version=-1,
                reason=reason,
                detail=detail,
                processed_at=pending.processed_at,
            )
            pending.results.append((_partition(msg), result, []))
        log.warning(
            "%s: %s/%d/%d to DLQ: %s (%s)",
            self.name,
            msg.topic(),
            msg.partition(),
            msg.offset(),
            reason,
            detail,
        )
