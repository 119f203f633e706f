"""The window stage's loop: raw records in, one system command per closed window out, exactly once.

One stage per windowed aggregation consumes `<ctx>.<name>` (the raw input) and `<ctx>.events`
(the join table) in one consumer group; both are co-partitioned with `<ctx>.commands`. A batch
is **one Kafka transaction** holding the system commands of the windows it closed, its dead
letters (refused and late records), re-routed records, the state changelog and the input
offsets (`send_offsets_to_transaction` with the group's metadata fences zombies, KIP-447). Only
after the commit does RocksDB take the batch's writes, with the changelog offset they reach.
So after a crash a window is emitted at most once by the log (an aborted emission is invisible
to `read_committed` readers, and the window is still open in the restored state), and its
deterministic command id makes any replay a duplicate the decider absorbs.

Deciding a batch is `streams.windows.intake` (no Kafka); the clients, the transaction calls,
the retries, the watchdog and the restart loop are the project's own (`streams.kafka`,
`streams.kafka.transaction`). A quiet partition (no record for the aggregation's
`idle_flush_ms`, nothing left to read) has its stream time moved by the wall-clock time since
its last record, which closes its windows in a transaction of their own.

Its poison policy is STOP: the intake already dead-letters the raw records it refuses and keeps
what it emits under the topics' limits, so an output the broker still refuses for what it is
(too large, invalid) means a topic set up against its declaration. The stage then stops at that
batch with the broker's error (`error`), rather than drop a record of an exactly-once fold or
retry it forever.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from streams import metrics
from streams.config import Settings
from streams.core.windows import WindowedAggregation
from streams.kafka import clients
from streams.kafka.clients import produce, take
from streams.kafka.hosting import restart_loop
from streams.kafka.runtime import ContextRuntime, TopicMismatch, ensure_topics
from streams.kafka.transaction import (
    Deliveries,
    PoisonPolicy,
    PoisonRecord,
    TransactionalSession,
    TransactionLoop,
    refused,
)
from streams.windows.intake import WindowBatch, WindowIntake
from streams.windows.state import NO_TIME, TIMER, WINDOW, WindowState

log = logging.getLogger(__name__)

TOPIC_RECHECK_S = 30.0
"""While a topic differs from its declaration the stage waits, checking it again this often."""
CATCH_UP_LIMIT_S = 30.0
"""Raw records of a newly assigned partition wait for its join table to catch up, this long at most."""


class WindowStage:
    """Runs one windowed aggregation of one context (a thread of the worker)."""

    def __init__(
        self,
        settings: Settings,
        runtime: ContextRuntime,
        aggregation: WindowedAggregation,
        *,
        worker_id: str,
        max_batch: int = 20000,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.aggregation = aggregation
        context, topics = runtime.context, runtime.topics
        self.name = f"{context.name}.{aggregation.name}"
        self.topics = topics
        self.input = topics.window_input(aggregation.name)
        self.changelog = topics.window_changelog(aggregation.name)
        self.group_id = runtime.groups.windows(aggregation.name)
        self.transactional_id = runtime.groups.windows_transactional_id(aggregation.name, worker_id)
        self.max_batch = max_batch
        root = Path(settings.data_dir) / worker_id / "windows" / f"{topics.prefix}{context.name}"
        self.state = WindowState(settings, self.changelog, root / aggregation.name, name=aggregation.name)
        self.intake = WindowIntake(
            context, aggregation, runtime.codec, topics, settings.partitions,
            max_record_bytes=settings.max_record_bytes, max_value_bytes=settings.max_message_bytes - 1024,
        )  # fmt: skip
        self.on_batch: Callable[[WindowBatch], None] | None = None
        self.folded = 0
        self._labels = (context.name, aggregation.name)
        self.error = ""
        """Why the stage stopped by itself (its poison policy), empty while it runs."""
        self._stop = threading.Event()
        self.session = TransactionalSession(
            settings, self.name, group_id=self.group_id, transactional_id=self.transactional_id,
            # a backlog is read in batches of max_batch: 16 MiB of prefetched records is plenty
            consumer_overrides={"enable.partition.eof": True, "queued.max.messages.kbytes": 16384},
        )  # fmt: skip
        self.loop = TransactionLoop(self.session, self._stop, poison=PoisonPolicy.STOP)
        self._positions: dict[tuple[str, int], int] = {}
        self._quiet: dict[int, tuple[float, int]] = {}
        """Per partition: (monotonic time of its last raw record or assignment, stream time then)."""
        self._waiting: dict[int, float] = {}
        """Raw partitions paused until their join table is read to the end (and since when)."""
        self._next_idle_check = 0.0
        self._stream_times: dict[int, int] = {}
        """Per raw partition: its committed stream time (ms), read by /metrics' thread."""

    # --- lifecycle ---------------------------------------------------------------------------

    def ensure_topics(self) -> None:
        """The context's topics and the aggregation's (raw input, DLQs, changelog)."""
        partitions = self.settings.partitions
        specs = [*self.topics.specs(partitions), *self.topics.window_specs(self.aggregation.name, partitions)]
        ensure_topics(self.settings, specs)

    def _topics_ready(self) -> bool:
        """Ensure the topics; while one differs from its declaration, say so and check again."""
        while not self._stop.is_set():
            try:
                self.ensure_topics()
                return True
            except TopicMismatch as exc:
                log.error("%s window stage not started: TopicMismatch: %s", self.name, exc)
                self._stop.wait(TOPIC_RECHECK_S)
        return False

    def stop(self) -> None:
        """Finish the current batch and leave the group."""
        self._stop.set()

    def run(self) -> None:
        """Process until `stop()`; failures restart the session with back-off. A topic that
        differs from its declaration keeps the stage from starting (and the worker unhealthy)."""
        if not self._topics_ready():
            return

        def failed(_exc: Exception) -> None:
            metrics.RETRIES.labels(self.name, "session").inc()
            self._close_clients()

        try:
            restart_loop(
                f"{self.name} window stage",
                self._session,
                self._stop,
                on_failure=failed,
                final=(PoisonRecord,),
            )
        except PoisonRecord as exc:
            self.error = str(exc)
            log.error("%s window stage stopped (poison policy stop): %s", self.name, exc)
        self._close_clients()

    def _session(self) -> None:
        self.session.open()
        consumer = self.session.consumer
        consumer.subscribe(
            [self.input, self.topics.events], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        wait = max(self.settings.commit_interval_s, 0.005)
        who = f"{self.name} consumer"
        while not self._stop.is_set():
            ends: set[tuple[str, int]] = set()
            messages = clients.records(take(consumer, self.max_batch, wait), who, eof=ends)
            if messages:
                self._process(messages)
            self._resume_caught_up(ends)
            self._idle_flush()

    def _close_clients(self) -> None:
        self.session.close()
        self.state.close_all()
        self._positions.clear()
        self._quiet.clear()
        self._waiting.clear()
        for partition in list(self._stream_times):
            del self._stream_times[partition]
            metrics.WINDOW_STREAM_TIME_BEHIND.remove(*self._labels, str(partition))

    # --- rebalance ---------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = sorted({tp.partition for tp in partitions})
        # stable offsets first: a previous owner's open transaction ends before the restore
        for tp in self.session.committed(partitions):
            if tp.offset >= 0:
                self._positions[(tp.topic, tp.partition)] = tp.offset
        for partition in numbers:
            if partition not in self.state:
                self.state.open(partition)
        now = time.monotonic()
        raw = [tp for tp in partitions if tp.topic == self.input]
        for tp in raw:  # readings wait until the join table has read its partition to the end
            self._waiting[tp.partition] = now
            self._quiet[tp.partition] = (now, self.state.stream_time(tp.partition))
        self._note_stream_times([tp.partition for tp in raw])
        consumer.assign(partitions)
        if raw and self.aggregation.table is not None:
            consumer.pause(raw)
        else:
            self._waiting.clear()
        log.info("%s: assigned %s", self.name, numbers)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = sorted({tp.partition for tp in partitions})
        for key in [k for k in self._positions if k[1] in numbers]:
            del self._positions[key]
        for partition in numbers:
            self._quiet.pop(partition, None)
            self._waiting.pop(partition, None)
            if self._stream_times.pop(partition, None) is not None:
                metrics.WINDOW_STREAM_TIME_BEHIND.remove(*self._labels, str(partition))
        self.state.close(numbers)
        log.info("%s: revoked %s", self.name, numbers)

    def _resume_caught_up(self, ends: set[tuple[str, int]]) -> None:
        """Resume the raw partitions whose join table reached the end of its partition."""
        if not self._waiting or not self.session.is_open:
            return
        now = time.monotonic()
        ready = [
            p for p, since in self._waiting.items()
            if (self.topics.events, p) in ends or now - since > CATCH_UP_LIMIT_S
        ]  # fmt: skip
        if ready:
            self.session.consumer.resume([TopicPartition(self.input, p) for p in ready])
            for p in ready:
                del self._waiting[p]
                self._quiet[p] = (now, self.state.stream_time(p))

    # --- batches -----------------------------------------------------------------------------

    def _process(self, messages: list[Message]) -> None:
        now = time.monotonic()
        for msg in messages:
            if msg.topic() == self.input:
                self._quiet[msg.partition()] = (now, NO_TIME)  # stream time filled in after the batch
        self._until_committed(
            messages, lambda records: self.intake.decide(records, self.state, self.state, _now_ms())
        )
        for partition, (since, stream_time) in list(self._quiet.items()):
            if stream_time == NO_TIME and partition in self.state:
                self._quiet[partition] = (since, self.state.stream_time(partition))

    def _idle_flush(self) -> None:
        """Close the windows of partitions that went quiet, as if their stream time had moved
        with the wall clock since their last record."""
        now = time.monotonic()
        if now < self._next_idle_check or not self.session.is_open:
            return
        self._next_idle_check = now + 0.2
        idle_s = self.aggregation.idle_flush_ms / 1000
        targets = {}
        for partition, (since, stream_time) in self._quiet.items():
            if partition in self._waiting or stream_time == NO_TIME or now - since < idle_s:
                continue
            target = stream_time + int((now - since) * 1000)
            if self._due(partition, target) and self._caught_up(partition):
                targets[partition] = target
        if targets:
            self._until_committed([], lambda _: self.intake.advance(targets, self.state, _now_ms()))

    def _due(self, partition: int, target: int) -> bool:
        """Whether a window or timer of the partition closes at stream time `target`."""
        if partition not in self.state:
            return False
        grace = self.aggregation.spec.grace_ms
        windows = next(iter(self.state.scan_until(partition, WINDOW, target - grace)), None)
        return (
            windows is not None
            or next(iter(self.state.scan_until(partition, TIMER, target)), None) is not None
        )

    def _caught_up(self, partition: int) -> bool:
        """Nothing left to read in the partition's raw input."""
        consumer = self.session.consumer
        tp = TopicPartition(self.input, partition)
        try:
            _, high = consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:
                _, high = consumer.get_watermark_offsets(tp, timeout=2)
            position = consumer.position([tp])[0].offset
        except KafkaException:
            return False
        position = max(position, self._positions.get((self.input, partition), 0))
        return position >= high

    def _until_committed(
        self, messages: list[Message], decide: Callable[[list[Message]], WindowBatch]
    ) -> None:
        """Decide and commit a batch (decided again after each abort, by the one transactional
        loop); then close, in batches of their own, the windows still due that it left (`more`)."""
        batch = self._commit_one(messages, decide)
        while batch is not None and batch.more and not self._stop.is_set():
            owned = [p for p in batch.more if p in self.state]
            batch = self._commit_one([], functools.partial(self._drain, owned))

    def _drain(self, partitions: list[int], _records: list[Message]) -> WindowBatch:
        return self.intake.drain(partitions, self.state, _now_ms())

    def _commit_one(
        self, messages: list[Message], decide: Callable[[list[Message]], WindowBatch]
    ) -> WindowBatch | None:
        def attempt(records: list[Message], _careful: bool) -> WindowBatch:
            batch = decide(records)
            if not batch.empty():
                self._write(batch)
                self._count(batch)
            return batch

        # every record reports its delivery: each attempt is careful
        return self.loop.until_committed(messages, attempt, careful=True)

    def _write(self, batch: WindowBatch) -> None:
        """One transaction: commands, dead letters, re-routed records, changelog, offsets."""
        session = self.session
        producer = session.producer
        deliveries = Deliveries()
        noted = deliveries.noted
        session.begin()
        commands = self.topics.commands
        for command in batch.commands:
            produce(producer, commands, command.value, command.key, partition=command.partition,
                    headers=command.headers, on_delivery=noted)  # fmt: skip
        for topic, letter in batch.letters:
            produce(producer, topic, letter.value, letter.key, headers=letter.headers, on_delivery=noted)
        for moved in batch.reroutes:
            produce(producer, self.input, moved.value, moved.key, partition=moved.partition,
                    headers=moved.headers, timestamp=moved.timestamp, on_delivery=noted)  # fmt: skip
        deliveries.changelog(producer, self.changelog, batch.writes)
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.offsets.items()]
        if not offsets:  # an idle flush: the positions it is based on fence a zombie all the same
            partitions = set(batch.writes)
            offsets = [TopicPartition(t, p, o) for (t, p), o in self._positions.items() if p in partitions]
        if offsets:
            session.send_offsets(offsets)
        session.flush()
        refused(deliveries.failures)  # a record refused for what it is: the poison policy (stop)
        session.commit()
        self._positions.update(batch.offsets)
        self.state.apply(batch.writes, deliveries.changelog_end, batch.decoded)
        self._note_stream_times(list(batch.writes))

    def _note_stream_times(self, partitions: list[int]) -> None:
        """Keep the committed stream time of partitions for `streams_window_stream_time_behind_seconds`,
        which /metrics computes against the wall clock when it is read."""
        for partition in partitions:
            if partition not in self.state:
                continue
            stream_time = self.state.stream_time(partition)
            if stream_time == NO_TIME:
                continue
            if partition not in self._stream_times:
                gauge = metrics.WINDOW_STREAM_TIME_BEHIND.labels(*self._labels, str(partition))
                gauge.set_function(functools.partial(self._behind_s, partition))
            self._stream_times[partition] = stream_time

    def _behind_s(self, partition: int) -> float:
        stream_time = self._stream_times.get(partition)
        return 0.0 if stream_time is None else max(time.time() - stream_time / 1000, 0.0)

    def _count(self, batch: WindowBatch) -> None:
        context, name = self._labels
        for outcome, n in batch.outcomes.items():
            metrics.WINDOW_RECORDS.labels(context, name, outcome).inc(n)
        for trigger, n in batch.closed.items():
            metrics.WINDOWS_CLOSED.labels(context, name, trigger).inc(n)
        late = batch.outcomes.get("late", 0)
        if late:
            metrics.WINDOW_LATE.labels(context, name).inc(late)
        if batch.fired:
            metrics.WINDOW_TIMERS.labels(context, name).inc(batch.fired)
        if batch.timestamps:
            metrics.observe_ages(metrics.WINDOW_LATENCY.labels(context, name), time.time(), batch.timestamps)
        self.folded += batch.outcomes.get("folded", 0)
        if self.on_batch is not None:
            self.on_batch(batch)


def _now_ms() -> int:
    return int(time.time() * 1000)
