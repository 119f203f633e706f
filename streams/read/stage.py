"""A read-side stage: one consumer group over co-partitioned inputs, with a store per partition.

A batch is handled at least once: its output (documents, re-keyed events, DLQ records) is
produced and acknowledged first, then the store takes the batch's writes and input positions in
one atomic write, then the offsets are committed (only for lag monitoring: a stage resumes from
its store's positions). A crash between those steps makes the batch run again, and the version
check in `apply_event` makes the second run a no-op.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams import metrics
from streams.config import Settings
from streams.core.views import EventMeta
from streams.kafka import clients
from streams.kafka.clients import is_poison, take
from streams.kafka.hosting import restart_loop
from streams.kafka.runtime import ContextRuntime
from streams.kafka.store import LEGACY_FORMAT, PartitionStore
from streams.read.batch import Batch, Output, Restored
from streams.read.wakeups import BatchWakeups
from streams.wire import headers as h
from streams.wire.codec import DecodeError

log = logging.getLogger(__name__)


def failure_reason(exc: Exception) -> str:
    """The DLQ reason: a decode error's machine-readable reason (as on the write side), else
    the exception's class name (a handler bug)."""
    return exc.reason if isinstance(exc, DecodeError) else type(exc).__name__


def event_meta(headers: list[tuple[str, bytes]] | None, key: str) -> EventMeta:
    """The event metadata a view handler sees, from the record headers (only the four it
    needs are decoded: this runs for every event of every view)."""
    found = dict(headers or ())  # one C-level pass; only the four values used are decoded
    aggregate_id = found.get(h.AGGREGATE_ID)
    return EventMeta(
        aggregate_id=key if aggregate_id is None else _text(aggregate_id),
        aggregate_version=int(found[h.AGGREGATE_VERSION]),
        event_type=_text(found.get(h.EVENT_TYPE)),
        occurred_at=_text(found.get(h.OCCURRED_AT)),
    )


def _text(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


class HaltProjection(Exception):
    """A handler failed and the view is configured to halt rather than dead-letter."""


class Stage:
    """A consumer group over co-partitioned topics, with a store per partition (one thread)."""

    label = "stage"
    store_format = LEGACY_FORMAT
    """The key format of the stage's stores: a store written in another one is rebuilt."""

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
        self.arriving: set[int] = set()
        """Partitions being assigned to this stage now (opened and restored, not yet in `stores`)."""
        self.restored: dict[int, Restored] = {}
        self.assigned_at = 0.0
        """When partitions were last assigned (monotonic clock)."""
        """Partitions this stage restored from its compacted output (for tests and benches)."""
        self.error: str = ""
        self.consumed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._lock = threading.Lock()
        self._lag = -1
        self._lag_at = 0.0
        self.wakeups = BatchWakeups()
        """Set per partition when a batch commits: what `min_version`/`min_offset` waiters await."""

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
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def run(self) -> None:
        """Consume until stopped; failures restart the session after a pause."""

        def failed(exc: Exception) -> None:
            self.error = f"{type(exc).__name__}: {exc}"
            self._close()

        try:
            restart_loop(self.group_id, self._session, self._stop, on_failure=failed, final=(HaltProjection,))
        except HaltProjection as exc:
            self.error = str(exc)
            log.error("%s halted: %s", self.group_id, exc)
        self._close()

    def _session(self) -> None:
        self._producer = clients.producer(self.settings, errors_only=True)
        self._consumer = clients.group_consumer(self.settings, self.group_id, client_id=self.client_id)
        self._consumer.subscribe(self.inputs, on_assign=self._on_assign, on_revoke=self._on_revoke)
        self.error = ""
        while not self._stop.is_set():
            good = clients.records(take(self._consumer, 2000, 0.1), self.group_id)
            if good:
                self._batch(good)
            self._skip_control_records()
            self.idle()
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
            closed = list(self.stores)
            self.stores.clear()
        self.wakeups.committed(closed)

    # --- rebalance -------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned_at = time.monotonic()
        # A store is published in `stores` only once restored: until then the query API does not
        # hold the partition; a request for it waits for `arriving` to clear instead of reading
        # a half-filled store (a false 404).
        opened: dict[int, PartitionStore] = {}
        self.arriving = {tp.partition for tp in partitions}
        try:
            for partition in sorted({tp.partition for tp in partitions}):
                store = self.stores.get(partition)
                if store is None:
                    store = self._open(partition)
                opened[partition] = store
                if self.settings.view_restore and all(store.position(t) == 0 for t in self.inputs):
                    self._restore(partition, store)
        finally:
            with self._lock:
                self.stores.update(opened)
            self.arriving = set()
        positions = [
            TopicPartition(tp.topic, tp.partition, self.stores[tp.partition].position(tp.topic))
            for tp in partitions
        ]
        consumer.assign(positions)
        if positions:  # the consumer (and its lag metric) learns where the stage stands at once
            consumer.commit(offsets=positions, asynchronous=True)
        log.info("%s: assigned %s", self.group_id, sorted({tp.partition for tp in partitions}))

    def _open(self, partition: int) -> PartitionStore:
        """A partition's store, in the stage's key format (another one is rebuilt from offset 0)."""
        path = self.data_dir / f"p{partition}"
        store = PartitionStore(path, self.settings.rocksdb_statistics_on)
        found = store.format()
        if found != self.store_format:
            if found is not None:
                log.warning("%s p%d: store format %s, not %s: rebuilding it from the log", self.group_id,
                            partition, found.decode(), self.store_format.decode())  # fmt: skip
                store.destroy()
                store = PartitionStore(path, self.settings.rocksdb_statistics_on)
            store.set_format(self.store_format)
        return store

    def _restore(self, partition: int, store: PartitionStore) -> None:
        """Restore a partition new to this worker from the stage's compacted output, if it has
        one; a failure leaves the store as it is (the stage then folds from its position)."""
        started = time.monotonic()
        try:
            restored = self.restore(partition, store)
        except Exception:
            log.exception("%s p%d: restore failed; folding from the log", self.group_id, partition)
            return
        if restored is not None:
            self.restored[partition] = restored
            metrics.RESTORE_SECONDS.labels(restored.topic).observe(time.monotonic() - started)
            metrics.RESTORED_RECORDS.labels(restored.topic, str(partition)).inc(restored.records)
            log.info(
                "%s p%d: restored %d keys up to offset %s in %.2fs", self.group_id, partition,
                restored.keys, restored.position, time.monotonic() - started,
            )  # fmt: skip

    def restore(self, partition: int, store: PartitionStore) -> Restored | None:
        """Fill an empty store from the stage's compacted output (subclasses; None: nothing)."""
        return None

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        with self._lock:
            for partition in {tp.partition for tp in partitions}:
                store = self.stores.pop(partition, None)
                if store is not None:
                    store.close()
        self.wakeups.committed(tp.partition for tp in partitions)

    def store(self, partition: int) -> PartitionStore | None:
        """The store of a partition this worker owns now, else None."""
        return self.stores.get(partition)

    # --- batches ---------------------------------------------------------------------------

    def _batch(self, messages: list[Message]) -> None:
        """Fold, produce and commit a batch. An output the broker refuses for what it is (too
        large, invalid) cannot be retried: the batch is folded again without the inputs it came
        from, which go to the stage's DLQ (`output_rejected`), so the rest of it goes on."""
        assert self._consumer is not None
        refused: dict[tuple[str, int, int], KafkaError] = {}
        while True:
            batch = self._fold(messages, refused)
            failures = self._produce(batch)
            if not failures:
                break
            poisoned = [(err, out) for err, out in failures if is_poison(err) and out.sources]
            if len(poisoned) < len(failures):
                raise RuntimeError(f"output not acknowledged: {failures[0][0].str()}")
            for err, out in poisoned:
                for source in out.sources:
                    refused[(source.topic(), source.partition(), source.offset())] = err
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
        self.wakeups.committed(batch.positions, batch.writes)

    def _fold(self, messages: list[Message], refused: dict[tuple[str, int, int], KafkaError]) -> Batch:
        batch = Batch(dict(self.stores), limit=self.settings.max_message_bytes)
        for msg in messages:
            partition = msg.partition()
            if partition not in batch.stores:
                continue
            error = refused.get((msg.topic(), partition, msg.offset())) if refused else None
            if error is None:
                self.handle(msg, batch)
            else:
                self.reject(msg, batch, "output_rejected", f"the broker refused its output: {error.str()}")
            batch.positions.setdefault(partition, {})[msg.topic()] = msg.offset() + 1
            _, ts = msg.timestamp()
            if ts > 0:
                batch.timestamps.append(ts / 1000.0)
        self.complete(batch)
        return batch

    def _produce(self, batch: Batch) -> list[tuple[KafkaError, Output]]:
        """Produce a batch's output and wait for it; the failed records (delivery reports come
        for failures only, matched back to their outputs by topic and key)."""
        assert self._producer is not None
        failed: list[tuple[KafkaError, str, bytes | None]] = []

        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failed.append((err, msg.topic(), msg.key()))

        refused: list[tuple[KafkaError, Output]] = []
        for out in batch.out:
            kwargs: dict[str, Any] = {"headers": out.headers, "on_delivery": on_delivery}
            if out.partition is not None:
                kwargs["partition"] = out.partition
            if out.timestamp:
                kwargs["timestamp"] = out.timestamp
            try:
                clients.produce(self._producer, out.topic, out.value, out.key, poll_s=0.1, **kwargs)
            except KafkaException as exc:  # refused before it left: too large for the client
                refused.append((exc.args[0], out))
        if batch.out and self._producer.flush(60) > 0:
            raise RuntimeError("output not acknowledged within 60s")
        if failed:
            outputs = {(out.topic, out.key): out for out in batch.out}
            refused += [
                (err, outputs.get((topic, key)) or Output(topic, None, key, None, []))
                for err, topic, key in failed
            ]
        return refused

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
        self.wakeups.committed(moved, {})
        offsets = [TopicPartition(t, p, o) for p, topics in moved.items() for t, o in topics.items()]
        consumer.commit(offsets=offsets, asynchronous=True)

    def handle(self, msg: Message, batch: Batch) -> None:
        """Fold one record into the batch (subclasses)."""
        raise NotImplementedError

    def reject(self, msg: Message, batch: Batch, reason: str, detail: str) -> None:
        """Dead-letter one input record that cannot be handled (subclasses: their DLQ)."""
        raise NotImplementedError

    def complete(self, batch: Batch) -> None:
        """After the batch's last record, before its output is produced (subclasses)."""

    def after_batch(self, batch: Batch) -> None:
        """Metrics after a committed batch (subclasses)."""

    def idle(self) -> None:
        """Between batches, in the stage's thread (subclasses: work besides the inputs)."""

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
                    high = -1
                if high < 0:  # no fetch answered for it yet: a lag of 0 now would be a guess
                    self._lag = -1
                    return
                total += max(high - store.position(topic), 0)
        self._lag = total
        self.on_lag(total)

    def on_lag(self, lag: int) -> None:
        """Publish a lag measurement (subclasses)."""
