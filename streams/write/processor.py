"""The write side's loop: commands in, events out, exactly once.

One loop per context consumes `<ctx>.commands` in batches. A batch is one Kafka transaction
holding its events, results, DLQ records, state changelog and the input offsets, so a
`read_committed` reader sees each accepted command's events exactly once, whatever crashes.
Zombie workers are fenced by the consumer-group generation (KIP-447); a stable transactional id
per worker lets a restarted worker abort what its previous life left open.

Deciding a batch is the intake's job (`streams.write.intake`, no Kafka); producing it is the
`BatchWriter`'s (`streams.write.batch`); the clients, the transaction calls and the retries are
the one transactional loop's (`streams.kafka.transaction`). Its poison policy here is
QUARANTINE: a command whose outputs the broker refuses is found by bisecting its batch and
dead-lettered (`output_rejected`), and the rest of the batch commits exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams import metrics
from streams.config import Settings
from streams.core.clock import utc_now
from streams.kafka import clients
from streams.kafka.clients import CALL_TIMEOUT_S, bounded, is_fatal, take, watermarks
from streams.kafka.hosting import restart_loop
from streams.kafka.runtime import ContextRuntime, ensure_topics
from streams.kafka.transaction import (
    RETRIED,
    PoisonOutput,
    PoisonPolicy,
    RetryBatch,
    TransactionalSession,
    TransactionLoop,
    refused,
)
from streams.wire.changelog import ExpiredResults
from streams.write.appends import EventAppend, OffsetsMispredicted
from streams.write.batch import BatchWriter, DecidedBatch
from streams.write.intake import BatchDecider, IntakeLimits
from streams.write.state import CommittedState

log = logging.getLogger(__name__)

_EXPIRY_CHECK_S = 1.0
"""How often an idle loop looks for command ids past the idempotency window."""
_EXPIRY_PER_BATCH = 5000
"""Most command ids one transaction forgets (the rest go with the next ones)."""


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
        self.name = runtime.context.name
        self.topics = runtime.topics
        self.max_batch = max_batch
        self.group_id = runtime.groups.handler
        self.transactional_id = runtime.groups.transactional_id(worker_id)
        self.exactly_once = settings.exactly_once
        data_dir = Path(settings.data_dir) / worker_id / f"{runtime.topics.prefix}{self.name}"
        self.state = CommittedState(
            settings,
            runtime.codec,
            runtime.states,
            runtime.topics.changelog,
            data_dir,
            cache_size,
            name=self.name,
        )
        self._next_expiry = 0.0
        limits = IntakeLimits(
            settings.max_record_bytes,
            settings.max_state_bytes,
            settings.snapshot_every,
            settings.max_message_bytes,
        )
        self.decider = BatchDecider(runtime.context, runtime.codec, limits, runtime.limits, runtime.states)
        # where each events partition's next record will land: a transaction's events get
        # consecutive offsets and its commit marker one more (checked before every commit)
        self._next_event_offset: dict[int, int] = {}
        self._stop = threading.Event()
        self.session = TransactionalSession(
            settings,
            self.name,
            group_id=self.group_id,
            transactional_id=self.transactional_id,
            transactional=self.exactly_once,
        )
        self.loop = TransactionLoop(
            self.session,
            self._stop,
            poison=PoisonPolicy.QUARANTINE,
            quarantine=self._quarantine,
            on_abort=self._aborted,
        )
        self._writer: BatchWriter | None = None
        self.on_batch: Callable[[int], None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def ensure_topics(self) -> None:
        """The context's topics plus the state changelog (same partition count as commands)."""
        partitions = self.settings.partitions
        ensure_topics(self.settings, [*self.topics.specs(partitions), self.topics.changelog_spec(partitions)])

    def stop(self) -> None:
        """Ask the loop to finish its current batch and leave the group."""
        self._stop.set()

    def run(self) -> None:
        """Process until `stop()`; transient failures restart the session with back-off."""
        self.ensure_topics()

        def failed(_exc: Exception) -> None:
            metrics.RETRIES.labels(self.name, "session").inc()
            self._close_clients()

        restart_loop(f"{self.name} handler", self._run_session, self._stop, on_failure=failed)
        self._close_clients()

    def _run_session(self) -> None:
        self.session.open()
        consumer = self.session.consumer
        self._writer = BatchWriter(
            self.session.producer,
            self.runtime,
            self._next_event_offset,
            lambda p: watermarks(consumer, TopicPartition(self.topics.events, p))[1],
            exactly_once=self.exactly_once,
        )
        consumer.subscribe([self.topics.commands], on_assign=self._on_assign, on_revoke=self._on_revoke)
        wait = max(self.settings.commit_interval_s, 0.005)
        who = f"{self.name} consumer"
        while not self._stop.is_set():
            messages = clients.records(take(consumer, self.max_batch, wait), who)
            if messages:
                self.loop.until_committed(messages, self._process_batch)
            elif time.monotonic() >= self._next_expiry:
                self._expire_idle()

    def _close_clients(self) -> None:
        self.session.close()
        self._writer = None
        self.state.close_all()
        self._next_event_offset.clear()

    # --- rebalance -------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.session.committed(partitions)  # a previous owner's open transaction ends first
        for tp in partitions:
            self.state.open(tp.partition)
        log.info("%s: assigned %s", self.name, self.state.owned())

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = [tp.partition for tp in partitions]
        for partition in revoked:
            self._next_event_offset.pop(partition, None)
        self.state.close(revoked)
        log.info("%s: revoked %s", self.name, revoked)

    # --- batches ---------------------------------------------------------------------------

    def _quarantine(self, msg: Message, error: KafkaError) -> None:
        """Dead-letter a command the broker refused an output of (`output_rejected`), with a
        rejected result; without the result, then without the value, if those are refused too."""
        detail = f"the broker refused one of its records: {error.str()}"
        attempts = ({"answer": True}, {"answer": False}, {"answer": False, "keep_value": False})
        for attempt in attempts:
            batch = self.decider.quarantine(msg, "output_rejected", detail, **attempt)
            try:
                self._write(batch, careful=True)
            except PoisonOutput as exc:
                self.loop.abort(exc)
                continue
            self._count(batch, 1)
            return
        raise RetryBatch(
            f"the DLQ refused {msg.topic()}/{msg.partition()}/{msg.offset()} even without its value"
        )

    def _aborted(self, exc: Exception) -> None:
        """After an abort: where the partitions end is read again before the retry, unless the
        retry is the one that learnt the real offsets."""
        if not isinstance(exc, OffsetsMispredicted):
            self._next_event_offset.clear()

    def _process_batch(self, messages: list[Message], careful: bool) -> None:
        batch = self.decider.decide(messages, self.state, self.state)
        if not batch.offsets:
            return
        if not careful:
            batch.expired = self._expired()
        self._write(batch, careful=careful)
        self._count(batch, len(messages))

    def _expired(self) -> list[ExpiredResults]:
        """Results records past the idempotency window, to tombstone in the next transaction."""
        self._next_expiry = time.monotonic() + _EXPIRY_CHECK_S
        cutoff = int(time.time() * 1000) - self.settings.idempotency_window_ms
        return self.state.expired(cutoff, _EXPIRY_PER_BATCH)

    def _expire_idle(self) -> None:
        """With no command to process, a transaction of tombstones only (when any id expired)."""
        expired = self._expired()
        if not expired:
            return
        batch = DecidedBatch(utc_now(), expired=expired)
        try:
            self._write(batch, careful=False)
        except RETRIED as exc:
            if isinstance(exc, KafkaException) and is_fatal(exc.args[0]):
                raise
            self.session.abort()
            self._next_event_offset.clear()
            log.warning("%s: expiring command ids failed (%s); trying again later", self.name, exc)
            return
        self._count(batch, 0)

    def _write(self, batch: DecidedBatch, *, careful: bool) -> None:
        """Produce a decided batch and commit it with its input offsets; then RocksDB follows."""
        assert self._writer is not None
        session = self.session
        producer = session.producer

        def wait_for_offsets(events: EventAppend) -> None:
            # no transaction to abort if a prediction were wrong: wait for the real offsets
            events.wait(producer.poll, CALL_TIMEOUT_S)
            events.learn_actual()

        if self.exactly_once:
            session.begin()
        written = self._writer.write(batch, wait_for_offsets, careful=careful)
        offsets = [TopicPartition(self.topics.commands, p, o) for p, o in batch.offsets.items()]
        if self.exactly_once:
            if offsets:  # none: a batch of expired command ids only
                session.send_offsets(offsets)
            # every record is acknowledged by then: the commit has nothing left to send
            written.events.wait(producer.poll, CALL_TIMEOUT_S)
            if careful:
                producer.flush(CALL_TIMEOUT_S)
                refused(written.failures)
            written.events.check()
            session.commit()
            written.events.advance(marker=1)
        else:  # at least once: everything acknowledged, then the offsets
            if producer.flush(30):
                raise RetryBatch("records not acknowledged")
            refused(written.failures)
            consumer = session.consumer
            if offsets:
                bounded("commit offsets", lambda: consumer.commit(offsets=offsets, asynchronous=False))
            written.events.advance(marker=0)
        # committed: now RocksDB and the cache may follow
        self.state.apply(written.store_writes, written.changelog_end, batch.aggregates)

    def _count(self, batch: DecidedBatch, n: int) -> None:
        name = self.name
        if batch.expired:
            forgotten = sum(len(e.command_ids) for e in batch.expired)
            metrics.IDEMPOTENCY_EXPIRED.labels(name).inc(forgotten)
            log.debug("%s: %d command ids left the idempotency window", name, forgotten)
        if not n:
            return
        commands = Counter((r.result.command_type, r.result.status, r.result.reason) for r in batch.results)
        for (command_type, status, reason), count in commands.items():
            metrics.COMMANDS.labels(name, command_type, status, reason).inc(count)
        for event_type, count in Counter(e.event_type for e in batch.events).items():
            metrics.EVENTS.labels(name, event_type).inc(count)
        for dlq_reason, count in Counter(d.reason for d in batch.dead_letters).items():
            metrics.DLQ.labels(name, dlq_reason).inc(count)
        now = time.time()
        latency = metrics.LATENCY.labels(name)
        for ts in batch.timestamps:
            latency.observe(max(now - ts, 0.0))
        metrics.BATCH.labels(name).observe(n)
        if self.on_batch is not None:
            self.on_batch(n)
