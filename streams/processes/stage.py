"""A process manager's stage: events in, commands and deadlines out, one transaction per batch.

One stage per manager consumes the public event topics it subscribes to, its re-keyed inputs
(`<process>.process-inputs`) and its timers (`<process>.timers`), all co-partitioned by
correlation id, in one consumer group. Each batch is **one Kafka transaction** (the project's one
transactional loop, `streams.kafka.transaction`) holding the commands to the target contexts'
command topics, the re-keyed inputs, the `DeadlineReached` records of the deadlines that fell
due, the dead letters, the instances' changelog and the input offsets. Only after the commit
does RocksDB take the changelog writes (`streams.kafka.tables`). After a crash, an aborted batch
is invisible to `read_committed` readers and is decided again from the same committed state,
with the same command ids: the target context's dedupe absorbs anything replayed.

Deadlines fire on the **wall clock** (`clock`, epoch ms), not on stream time, which stalls when
no input arrives: every loop turn (at most `due_every_s` apart, input or not) scans the owned
partitions' due index and emits what fell due in a transaction of its own, which also carries
the group's last positions so a zombie is fenced as for any batch. After an assignment, a
partition's due deadlines wait until the stage has read its inputs up to their ends at assignment
time (`streams.processes.catchup`): a record written before a restart that cancels a deadline is
read before that deadline may fire.

Its poison policy is QUARANTINE: an input whose outputs the broker refuses for what they are (a
command too large for its topic) is dead-lettered alone and the rest of its batch committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams import metrics
from streams.config import Settings
from streams.core.processes import ProcessManager
from streams.kafka import clients
from streams.kafka.clients import produce, take
from streams.kafka.hosting import restart_loop
from streams.kafka.runtime import ContextRuntime, ensure_topics
from streams.kafka.tables import ChangelogTable, TableCache
from streams.kafka.transaction import (
    Deliveries,
    PoisonPolicy,
    PoisonRecord,
    TransactionalSession,
    TransactionLoop,
    refused,
)
from streams.processes.catchup import CatchUp
from streams.processes.intake import ProcessBatch, ProcessIntake
from streams.processes.records import process_codec
from streams.wire.dlq import dead_letter, source_of
from streams.wire.topics import GroupNames, ProcessTopics

log = logging.getLogger(__name__)

Clock = Callable[[], int]
"""The wall clock deadlines fire on: epoch milliseconds."""


def wall_clock_ms() -> int:
    """The system's wall clock in epoch milliseconds."""
    return int(time.time() * 1000)


class ProcessStage:
    """Runs one process manager (a thread of the worker)."""

    def __init__(
        self,
        settings: Settings,
        pm: ProcessManager[Any],
        runtimes: Mapping[str, ContextRuntime],
        *,
        worker_id: str,
        clock: Clock = wall_clock_ms,
        max_batch: int = 5000,
        due_every_s: float = 0.2,
    ) -> None:
        missing = [name for name in pm.contexts if name not in runtimes]
        if missing:
            raise ValueError(f"process {pm.name} needs the contexts {missing}")
        self.settings = settings
        self.pm = pm
        self.name = f"process.{pm.name}"
        self.runtimes = {name: runtimes[name] for name in pm.contexts}
        self.topics = ProcessTopics(pm.name, settings.topic_prefix, settings.max_message_bytes)
        groups = GroupNames(settings.app_id, settings.topic_prefix, pm.name)
        self.clock = clock
        self.max_batch = max_batch
        self.due_every_s = due_every_s
        root = Path(settings.data_dir) / worker_id / "processes" / f"{settings.topic_prefix}{pm.name}"
        self.table: ChangelogTable[Any] = ChangelogTable(settings, self.topics.changelog, root, TableCache(1))
        self.intake: ProcessIntake | None = None
        self.on_batch: Callable[[ProcessBatch], None] | None = None
        """Called after each committed batch (tests, metrics)."""
        self.error = ""
        """Why the stage stopped by itself, empty while it runs."""
        self._stop = threading.Event()
        self.session = TransactionalSession(
            settings, self.name, group_id=groups.process,
            transactional_id=groups.process_transactional_id(worker_id),
        )  # fmt: skip
        self.loop = TransactionLoop(
            self.session, self._stop, poison=PoisonPolicy.QUARANTINE, quarantine=self._quarantine
        )
        self._positions: dict[tuple[str, int], int] = {}
        self._catchup = CatchUp()
        self._next_due = 0.0

    # --- lifecycle ---------------------------------------------------------------------------

    def ensure_topics(self) -> None:
        """The manager's own topics, and those of the contexts it reads and writes."""
        partitions = self.settings.partitions
        specs = [s for r in self.runtimes.values() for s in r.topics.specs(partitions)]
        ensure_topics(self.settings, [*specs, *self.topics.specs(partitions)])

    def stop(self) -> None:
        """Finish the current batch and leave the group."""
        self._stop.set()

    def run(self) -> None:
        """Process until `stop()`; failures restart the session with back-off."""

        def failed(_exc: Exception) -> None:
            metrics.RETRIES.labels(self.name, "session").inc()
            self._close()

        try:
            restart_loop(
                f"{self.name} stage", self._session, self._stop, on_failure=failed, final=(PoisonRecord,)
            )
        except PoisonRecord as exc:
            self.error = str(exc)
            log.error("%s stopped: %s", self.name, exc)
        self._close()

    def _session(self) -> None:
        if self.intake is None:  # blocking: the registry may be away (the restart loop waits)
            self.ensure_topics()
            codec = process_codec(self.settings)
            self.intake = ProcessIntake(self.pm, self.topics, self.runtimes, codec, self.settings.partitions)
        self.session.open()
        inputs = [*self.intake.sources, *self.intake.results, self.topics.inputs, self.topics.timers]
        self.session.consumer.subscribe(inputs, on_assign=self._on_assign, on_revoke=self._on_revoke)
        wait = min(max(self.settings.commit_interval_s, 0.005), self.due_every_s)
        while not self._stop.is_set():
            messages = clients.records(take(self.session.consumer, self.max_batch, wait), self.name)
            now = time.monotonic()
            if messages or now >= self._next_due:
                self._next_due = now + self.due_every_s
                self._commit(messages)

    def _close(self) -> None:
        self.session.close()
        self.table.close_all()
        self._positions.clear()
        self._catchup = CatchUp()

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for partition in sorted({tp.partition for tp in partitions}):
            if partition not in self.table:
                self.table.open(partition)
        for tp in consumer.committed(partitions, timeout=30):
            if tp.offset >= 0:
                self._positions[(tp.topic, tp.partition)] = tp.offset
        for tp in partitions:  # the ends of what was written before: deadlines wait for them
            _, end = clients.watermarks(consumer, TopicPartition(tp.topic, tp.partition))
            if end > self._positions.get((tp.topic, tp.partition), 0):
                self._catchup.expect(tp.topic, tp.partition, end)
        consumer.assign(partitions)
        log.info("%s: assigned %s", self.name, sorted({tp.partition for tp in partitions}))
        if self._catchup.active:
            log.info(
                "%s: deadlines of %s held until their inputs are read",
                self.name,
                sorted(self._catchup.held()),
            )

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        for key in [k for k in self._positions if k[1] in numbers]:
            del self._positions[key]
        self._catchup.forget(numbers)
        self.table.close(numbers)

    # --- batches -----------------------------------------------------------------------------

    def _caught_up(self, messages: list[Message]) -> None:
        """Note how far the inputs are read (the consumer's positions count the transaction
        markers, which no record's offset does); release the partitions that reached their ends."""
        positions = dict(self._positions)
        for msg in messages:
            positions[(msg.topic(), msg.partition())] = msg.offset() + 1
        wanted = [TopicPartition(t, p) for t, p in self._catchup.ends]
        try:
            for tp in self.session.consumer.position(wanted):
                if tp.offset >= 0:
                    key = (tp.topic, tp.partition)
                    positions[key] = max(positions.get(key, 0), tp.offset)
        except KafkaException as exc:
            log.debug("%s: positions: %s", self.name, exc)
        released = self._catchup.reached(positions)
        if released:
            log.info("%s: inputs of %s read to their ends: their deadlines may fire", self.name, released)

    def _lookup(self, partition: int, key: bytes) -> bytes | None:
        return self.table.get(partition, key)

    def _scan(self, partition: int, prefix: bytes) -> Iterable[bytes]:
        return (key for key, _ in self.table.stores[partition].scan(prefix))

    def _commit(self, messages: list[Message]) -> None:
        catching_up = self._catchup.active  # this batch's re-keyed inputs are still old ones
        if catching_up:
            self._caught_up(messages)

        def attempt(records: list[Message], _careful: bool) -> ProcessBatch:
            assert self.intake is not None
            records = [m for m in records if m.partition() in self.table]  # not of a revoked partition
            owned = self._catchup.ready(self.table.owned())
            batch = self.intake.decide(
                records, self._lookup, self._scan, owned, self.clock(), catching_up=catching_up
            )
            if not batch.empty():
                self._write(batch)
            return batch

        batch = self.loop.until_committed(messages, attempt, careful=True)
        if batch is None or batch.empty():
            return
        if catching_up:  # an old input re-keyed to a partition: read it back before its deadlines
            for partition in batch.written_to(self.topics.inputs):
                tp = TopicPartition(self.topics.inputs, partition)
                self._catchup.expect(tp.topic, partition, clients.watermarks(self.session.consumer, tp)[1])
        for outcome, n in batch.outcomes.items():
            metrics.PROCESS_INPUTS.labels(self.pm.name, outcome).inc(n)
        if self.on_batch is not None:
            self.on_batch(batch)

    def _write(self, batch: ProcessBatch) -> None:
        """One transaction: commands, re-keyed inputs, deadlines, dead letters, changelog, offsets."""
        session = self.session
        producer = session.producer
        deliveries = Deliveries()
        session.begin()
        for out in batch.records:
            where = {} if out.partition < 0 else {"partition": out.partition}
            produce(
                producer,
                out.topic,
                out.value,
                out.key,
                headers=out.headers,
                on_delivery=deliveries.noted,
                **where,
            )
        deliveries.changelog(producer, self.topics.changelog, batch.writes)
        offsets = [TopicPartition(t, p, o) for (t, p), o in batch.offsets.items()]
        if not offsets:  # deadlines only: the positions they are based on fence a zombie all the same
            owned = set(batch.writes)
            offsets = [TopicPartition(t, p, o) for (t, p), o in self._positions.items() if p in owned]
        if offsets:
            session.send_offsets(offsets)
        session.flush()
        refused(deliveries.failures)
        session.commit()
        self._positions.update(batch.offsets)
        self.table.apply(batch.writes, deliveries.changelog_end)

    def _quarantine(self, msg: Message, error: KafkaError) -> None:
        """Dead-letter one input whose outputs the broker refused, and commit its offset."""
        where = source_of(msg.topic(), msg.partition(), msg.offset())
        letter = dead_letter(
            key=msg.key(), value=msg.value(), headers=msg.headers(), reason="output_refused",
            detail=error.str(), source=where, process=self.pm.name,
        )  # fmt: skip
        session = self.session
        session.begin()
        produce(session.producer, self.topics.dlq, msg.value(), msg.key(), headers=letter.headers)
        offset = TopicPartition(msg.topic(), msg.partition(), msg.offset() + 1)
        session.send_offsets([offset])
        session.flush()
        session.commit()
        self._positions[(msg.topic(), msg.partition())] = msg.offset() + 1
        log.error("%s: %s dead-lettered: its outputs were refused (%s)", self.name, where, error.str())
