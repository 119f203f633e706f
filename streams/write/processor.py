"""The write side's loop: commands in, events out, exactly once.

One loop per context consumes `<ctx>.commands` in batches. A batch is one Kafka transaction
holding its events, results, DLQ records, state changelog and the input offsets, so a
`read_committed` reader sees each accepted command's events exactly once, whatever crashes.
Zombie workers are fenced by the consumer-group generation (KIP-447); a stable transactional id
per worker lets a restarted worker abort what its previous life left open.

Deciding a batch is the intake's job (`streams.write.intake`, no Kafka); producing it is the
`BatchWriter`'s (`streams.write.batch`); this module owns the clients and the transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams import metrics
from streams.config import Settings
from streams.core.clock import utc_now
from streams.kafka import clients
from streams.kafka.clients import CALL_TIMEOUT_S, bounded, is_fatal, is_poison, take, watermarks
from streams.kafka.hosting import restart_loop
from streams.kafka.runtime import ContextRuntime, ensure_topics
from streams.kafka.transaction import PoisonOutput, RetryBatch, refused
from streams.wire.codec import RegistryUnavailable
from streams.write.appends import EventAppend, OffsetsMispredicted
from streams.write.batch import BatchWriter, DecidedBatch
from streams.write.changelog import ExpiredResults
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
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
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
        self._producer = clients.write_producer(
            self.settings, self.transactional_id if self.exactly_once else None
        )
        if self.exactly_once:
            self._producer.init_transactions(30)
        # static membership: a restarted worker takes its partitions back at once
        self._consumer = clients.group_consumer(
            self.settings, self.group_id, instance_id=self.transactional_id, max_poll_interval_ms=120000
        )
        consumer = self._consumer
        self._writer = BatchWriter(
            self._producer,
            self.runtime,
            self._next_event_offset,
            lambda p: watermarks(consumer, TopicPartition(self.topics.events, p))[1],
            exactly_once=self.exactly_once,
        )
        self._consumer.subscribe([self.topics.commands], on_assign=self._on_assign, on_revoke=self._on_revoke)
        wait = max(self.settings.commit_interval_s, 0.005)
        who = f"{self.name} consumer"
        while not self._stop.is_set():
            messages = clients.records(take(self._consumer, self.max_batch, wait), who)
            if messages:
                self._process_with_retry(messages)
            elif time.monotonic() >= self._next_expiry:
                self._expire_idle()

    def _close_clients(self) -> None:
        if self._consumer is not None:
            consumer = self._consumer
            try:
                bounded("consumer close", consumer.close, timeout=15)
            except Exception:
                log.warning("%s: consumer close failed; abandoning it", self.name, exc_info=True)
            self._consumer = None
        self._producer = None
        self._writer = None
        self.state.close_all()
        self._next_event_offset.clear()

    # --- rebalance -------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
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

    def _process_with_retry(self, messages: list[Message], *, careful: bool = False) -> None:
        """Process a batch until it commits. A record the broker refuses for what it is (too
        large, invalid) cannot be retried: the batch is retried carefully (every record reports
        its delivery) to find it, split in halves around it, and the command dead-lettered, so
        the rest of the batch commits exactly once."""
        delay = 0.2
        while True:
            try:
                self._process_batch(messages, careful=careful)
                return
            except (RetryBatch, RegistryUnavailable, KafkaException) as exc:
                fatal = isinstance(exc, KafkaException) and is_fatal(exc.args[0])
                self._abort(forget_offsets=not isinstance(exc, OffsetsMispredicted))
                if fatal:
                    raise
                poison = _poison(exc)
                if poison is not None and len(messages) == 1:
                    self._quarantine(messages[0], poison)
                    return
                if poison is not None:
                    metrics.RETRIES.labels(self.name, "bisect").inc()
                    middle = len(messages) // 2
                    self._process_with_retry(messages[:middle], careful=True)
                    self._process_with_retry(messages[middle:], careful=True)
                    return
                cause = type(exc).__name__
                metrics.RETRIES.labels(self.name, cause).inc()
                if not careful and _abortable(exc):  # which record failed? every one reports now
                    careful = True
                    continue
                log.warning("%s: batch aborted (%s: %s); retrying in %.1fs", self.name, cause, exc, delay)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, 10.0)
                # the assignment may have changed while we waited
                assigned = {tp.partition for tp in self._consumer.assignment()} if self._consumer else set()
                messages = [m for m in messages if m.partition() in assigned]
                if not messages:
                    return

    def _quarantine(self, msg: Message, error: KafkaError) -> None:
        """Dead-letter a command the broker refused an output of (`output_rejected`), with a
        rejected result; without the result, then without the value, if those are refused too."""
        detail = f"the broker refused one of its records: {error.str()}"
        attempts = ({"answer": True}, {"answer": False}, {"answer": False, "keep_value": False})
        for attempt in attempts:
            batch = self.decider.quarantine(msg, "output_rejected", detail, **attempt)
            try:
                self._write(batch, careful=True)
            except PoisonOutput:
                self._abort(forget_offsets=True)
                continue
            self._count(batch, 1)
            return
        raise RetryBatch(
            f"the DLQ refused {msg.topic()}/{msg.partition()}/{msg.offset()} even without its value"
        )

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

    def _process_batch(self, messages: list[Message], *, careful: bool = False) -> None:
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
        except (RetryBatch, RegistryUnavailable, KafkaException) as exc:
            if isinstance(exc, KafkaException) and is_fatal(exc.args[0]):
                raise
            self._abort(forget_offsets=True)
            log.warning("%s: expiring command ids failed (%s); trying again later", self.name, exc)
            return
        self._count(batch, 0)

    def _write(self, batch: DecidedBatch, *, careful: bool) -> None:
        """Produce a decided batch and commit it with its input offsets; then RocksDB follows."""
        assert self._producer is not None and self._consumer is not None and self._writer is not None
        producer = self._producer

        def wait_for_offsets(events: EventAppend) -> None:
            # no transaction to abort if a prediction were wrong: wait for the real offsets
            events.wait(producer.poll, CALL_TIMEOUT_S)
            events.learn_actual()

        if self.exactly_once:
            producer.begin_transaction()
        written = self._writer.write(batch, wait_for_offsets, careful=careful)
        offsets = [TopicPartition(self.topics.commands, p, o) for p, o in batch.offsets.items()]
        if self.exactly_once:
            metadata = self._consumer.consumer_group_metadata()
            if offsets:  # none: a batch of expired command ids only
                bounded("send_offsets", lambda: producer.send_offsets_to_transaction(offsets, metadata, 30))
            # every record is acknowledged by then: the commit has nothing left to send
            written.events.wait(producer.poll, CALL_TIMEOUT_S)
            if careful:
                producer.flush(CALL_TIMEOUT_S)
                refused(written.failures)
            written.events.check()
            self._commit()
            written.events.advance(marker=1)
        else:  # at least once: everything acknowledged, then the offsets
            if producer.flush(30):
                raise RetryBatch("records not acknowledged")
            refused(written.failures)
            consumer = self._consumer
            if offsets:
                bounded("commit offsets", lambda: consumer.commit(offsets=offsets, asynchronous=False))
            written.events.advance(marker=0)
        # committed: now RocksDB and the cache may follow
        self.state.apply(written.store_writes, written.changelog_end, batch.aggregates)

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


def _poison(exc: Exception) -> KafkaError | None:
    """The error of a record refused for what it is, if that is what `exc` says."""
    if isinstance(exc, PoisonOutput):
        return exc.error
    if isinstance(exc, KafkaException) and is_poison(exc.args[0]):
        return exc.args[0]
    return None


def _abortable(exc: Exception) -> bool:
    """A failure that a refused record may have caused (a failed commit, a failed delivery),
    rather than a known passing condition (a registry outage, a misprediction, a timeout)."""
    if isinstance(exc, KafkaException):
        return not exc.args[0].retriable()
    return type(exc) is RetryBatch and "within" not in str(exc)
