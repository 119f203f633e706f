"""The one loop of a stage that runs in Kafka transactions (the command processor, the window stage).

A transactional stage consumes a batch, decides what it writes (its own job, no Kafka), produces
that in **one transaction** with the input offsets (`send_offsets_to_transaction` with the
group's metadata fences zombies, KIP-447) and commits. Everything but the deciding, writing and
counting is here:

- `TransactionalSession`: the clients (a transactional producer and a static member of the
  stage's consumer group, built by `streams.kafka.clients`) and the transaction's calls: begin,
  send offsets, flush, commit (one that requires an abort raised as `RetryBatch`), abort, close;
  a commit or abort whose outcome is unknown is never retried on the same producer: it raises
  `AmbiguousOutcome`, which ends the session like a fatal error;
- `TransactionLoop.until_committed`: a batch is retried until it commits. A fatal error ends the
  session (the stage's restart loop builds new clients); any other failure aborts the
  transaction and runs the batch again, at once and carefully (every record reports its
  delivery) when a refused record may be the cause, else after a back-off that doubles from
  0.2 s to 10 s;
- `PoisonPolicy`: what a stage does with a batch the broker refuses a record of *for what it is*
  (too large, invalid: producing it again can only fail again). Each stage chooses one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from streams import metrics
from streams.config import Settings
from streams.kafka import clients
from streams.kafka.clients import CALL_TIMEOUT_S, TRANSACTION_TIMEOUT_MS, bounded, is_fatal, is_poison
from streams.wire.codec import RegistryUnavailable

log = logging.getLogger(__name__)

R = TypeVar("R")


class RetryBatch(Exception):
    """The batch must be aborted and processed again after a pause."""


class PoisonOutput(RetryBatch):
    """The broker refused one of the batch's records for what it is (too large, invalid):
    producing the same records again can only fail again."""

    def __init__(self, error: KafkaError) -> None:
        super().__init__(f"a record was refused: {error.str()}")
        self.error = error


class AmbiguousOutcome(Exception):
    """A commit or an abort whose outcome is unknown: it timed out, or failed with an error that
    says the call may be retried (librdkafka's retriable errors). Retrying it on the same producer
    can let a late request of the old attempt land in a later transaction (what KIP-890 closes on
    the broker; librdkafka has not implemented its client side). The stage drops its clients
    instead: the next producer, with the same transactional id, is fenced in by
    `init_transactions`, which completes or aborts whatever the old one left, and the stage
    resumes from the offsets that were really committed, its state rebuilt from the changelog."""


class PoisonRecord(Exception):
    """A stage whose policy is `PoisonPolicy.STOP` met a batch the broker refuses a record of:
    the stage stops, with this as its error."""


def refused(failures: list[KafkaError]) -> None:
    """PoisonOutput for the first failure that is the record's own fault, RetryBatch for any
    other failure, nothing when there is none."""
    for error in failures:
        if is_poison(error):
            raise PoisonOutput(error)
    if failures:
        raise RetryBatch(f"records not acknowledged: {failures[0].str()}")


class PoisonPolicy(StrEnum):
    """What a transactional stage does with a batch whose outputs the broker refuses for what
    they are (each stage chooses one; see docs/architecture.md)."""

    QUARANTINE = "quarantine"
    """Bisect the batch down to the one input record whose outputs are refused, hand that record
    to the stage's `quarantine` (which dead-letters it) and commit the rest exactly once."""
    STOP = "stop"
    """Abort and stop the stage at that batch (`PoisonRecord`): nothing of it is committed."""


RETRIED = (RetryBatch, RegistryUnavailable, KafkaException)
"""The failures a batch is retried after (anything else ends the session)."""


class TransactionalSession:
    """The clients of one transactional stage, and the calls of its transactions.

    `transactional=False` (the write side's at-least-once mode) builds an idempotent producer
    and makes `abort` a no-op; the stage then commits offsets itself.
    """

    def __init__(
        self,
        settings: Settings,
        name: str,
        *,
        group_id: str,
        transactional_id: str,
        transactional: bool = True,
        consumer_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.group_id = group_id
        self.transactional_id = transactional_id
        self.transactional = transactional
        self.consumer_overrides = consumer_overrides
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._commit_seconds = metrics.TRANSACTION_COMMIT.labels(name) if settings.signals else None
        """The commit-duration histogram's series (looked up once; None: STREAMS_SIGNALS=0)."""

    @property
    def producer(self) -> Producer:
        """The session's producer (open sessions only)."""
        assert self._producer is not None, f"{self.name}: session not open"
        return self._producer

    @property
    def consumer(self) -> Consumer:
        """The session's consumer (open sessions only)."""
        assert self._consumer is not None, f"{self.name}: session not open"
        return self._consumer

    @property
    def is_open(self) -> bool:
        """Whether the clients exist."""
        return self._producer is not None and self._consumer is not None

    def open(self) -> None:
        """Build the producer (fencing what a previous life of the transactional id left open)
        and the consumer, a static group member: a restarted worker takes its partitions back
        at once."""
        self._producer = clients.write_producer(
            self.settings, self.transactional_id if self.transactional else None
        )
        if self.transactional:
            self._producer.init_transactions(30)
        self._consumer = clients.group_consumer(
            self.settings, self.group_id, instance_id=self.transactional_id, max_poll_interval_ms=120000,
            overrides=self.consumer_overrides, commits=not self.transactional,
        )  # fmt: skip

    def close(self) -> None:
        """Leave the group (abandoning a consumer whose close hangs) and drop the producer."""
        if self._consumer is not None:
            consumer = self._consumer
            try:
                bounded("consumer close", consumer.close, timeout=15)
            except Exception:
                log.warning("%s: consumer close failed; abandoning it", self.name, exc_info=True)
            self._consumer = None
        self._producer = None

    def assigned(self) -> set[int]:
        """The partition numbers the consumer owns now (none when closed)."""
        if self._consumer is None:
            return set()
        return {tp.partition for tp in self._consumer.assignment()}

    def committed(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The group's committed offsets of `partitions`, once they are stable.

        Call it when partitions are assigned, *before* restoring their state. Under
        read_committed the fetch waits while a transaction that commits offsets for them is
        still open (KIP-447): a previous owner paused mid-transaction (a zombie) may yet commit
        it when it resumes, or the coordinator aborts it after the transaction timeout. A state
        restored before that would stop at the open transaction (the last stable offset) while
        the offsets read afterwards include it: the stage would decide on stale state."""
        wait_s = TRANSACTION_TIMEOUT_MS / 1000 + 30  # the coordinator's abort comes by then
        found: list[TopicPartition] = self.consumer.committed(partitions, timeout=wait_s)
        return found

    def begin(self) -> None:
        """Begin a transaction."""
        self.producer.begin_transaction()

    def send_offsets(self, offsets: list[TopicPartition]) -> None:
        """Put the input offsets into the open transaction, with the group's metadata."""
        producer = self.producer
        metadata = self.consumer.consumer_group_metadata()
        bounded("send_offsets", lambda: producer.send_offsets_to_transaction(offsets, metadata, 30))

    def flush(self) -> None:
        """Wait until every record is acknowledged (RetryBatch after the call timeout)."""
        if self.producer.flush(CALL_TIMEOUT_S):
            raise RetryBatch("records not acknowledged within the call timeout")

    def commit(self) -> None:
        """Commit the open transaction: an error that requires an abort raises RetryBatch, one
        that leaves the outcome unknown (retriable: e.g. timed out) AmbiguousOutcome, any other
        is raised as it is."""
        producer = self.producer
        started = time.perf_counter()
        try:
            bounded("commit", lambda: producer.commit_transaction(30))
        except KafkaException as exc:
            error = exc.args[0]
            if error.txn_requires_abort():
                raise RetryBatch(f"commit needs abort: {error}") from exc
            if error.retriable() and not is_fatal(error):
                raise AmbiguousOutcome(f"{self.name}: commit outcome unknown: {error}") from exc
            raise
        if self._commit_seconds is not None:
            self._commit_seconds.observe(time.perf_counter() - started)

    def abort(self) -> None:
        """Abort the open transaction (if any). The consumer's position is left alone: the
        caller retries the same records from memory. A fatal error is raised, and an abort
        whose outcome is unknown (retriable: e.g. timed out) as AmbiguousOutcome; any other
        (no transaction open) is ignored."""
        producer = self._producer
        if producer is None or not self.transactional:
            return
        try:
            bounded("abort", lambda: producer.abort_transaction(30))
        except KafkaException as exc:
            error = exc.args[0]
            if is_fatal(error):
                raise
            if error.retriable():
                raise AmbiguousOutcome(f"{self.name}: abort outcome unknown: {error}") from exc
            log.debug("abort: %s", exc)


class Deliveries:
    """The delivery reports of one transaction's records: the failures (for `refused`), and the
    changelog offset its records reach per partition (what a table applies after the commit)."""

    def __init__(self) -> None:
        self.failures: list[KafkaError] = []
        self.changelog_end: dict[int, int] = {}

    def noted(self, err: KafkaError | None, _msg: Message) -> None:
        """A record's report: only a failure matters."""
        if err is not None:
            self.failures.append(err)

    def track(self, err: KafkaError | None, msg: Message) -> None:
        """A changelog record's report: a failure, or the offset after it."""
        if err is not None:
            self.failures.append(err)
        else:
            end = self.changelog_end
            end[msg.partition()] = max(end.get(msg.partition(), 0), msg.offset() + 1)

    def changelog(
        self, producer: Producer, topic: str, writes: Mapping[int, Mapping[bytes, bytes | None]]
    ) -> None:
        """Produce a table's writes to its changelog, the last record of each partition tracked."""
        send = producer.produce
        noted, track = self.noted, self.track
        for partition, partition_writes in writes.items():
            last = len(partition_writes) - 1
            for i, (key, value) in enumerate(partition_writes.items()):
                on_delivery = track if i == last else noted
                try:  # the common case straight to the client: one call per record fewer
                    send(topic, value, key, partition=partition, on_delivery=on_delivery)
                except BufferError:  # its queue is full: wait for room as `clients.produce` does
                    clients.produce(producer, topic, value, key, partition=partition, on_delivery=on_delivery)


Attempt = Callable[[list[Message], bool], R]
"""Decide, write and commit a batch of records: `(records, careful) -> outcome`. `careful`:
every record reports its delivery, so a refused one is seen (raised as `PoisonOutput`)."""


class TransactionLoop:
    """Runs a stage's batches until they commit, with one retry policy and one poison policy.

    `quarantine(record, error)` commits the dead letter of one input record whose outputs the
    broker refused (policy QUARANTINE); `on_abort(exc)` runs after each abort (a stage drops
    what it had predicted from the aborted transaction).
    """

    FIRST_DELAY_S = 0.2
    MAX_DELAY_S = 10.0

    def __init__(
        self,
        session: TransactionalSession,
        stop: threading.Event,
        *,
        poison: PoisonPolicy,
        quarantine: Callable[[Message, KafkaError], None] | None = None,
        on_abort: Callable[[Exception], None] | None = None,
    ) -> None:
        if poison is PoisonPolicy.QUARANTINE and quarantine is None:
            raise ValueError("the quarantine policy needs a quarantine")
        self.session = session
        self.name = session.name
        self.stop = stop
        self.poison = poison
        self.quarantine = quarantine
        self.on_abort = on_abort

    def abort(self, exc: Exception) -> None:
        """Abort the open transaction and tell the stage."""
        self.session.abort()
        if self.on_abort is not None:
            self.on_abort(exc)

    def until_committed(
        self, messages: list[Message], attempt: Attempt[R], *, careful: bool = False
    ) -> R | None:
        """`attempt(messages, careful)` until it commits; its outcome. None: the stage was
        stopped, every record's partition was revoked meanwhile, or the batch was bisected.

        A fatal error is raised (after the abort), and so is a lost group membership
        (`left_group`) and AmbiguousOutcome (a commit or
        abort whose outcome is unknown), without running the batch again. A poison output is
        handled by the policy: a batch of several records is bisected (each half retried
        carefully), a single record quarantined; under STOP, or with no records to bisect (a
        batch of timers), PoisonRecord is raised. Other failures retry the batch: at once and
        carefully if a refused record may have caused them, else after the back-off, with the
        records of partitions still owned.
        """
        delay = self.FIRST_DELAY_S
        while True:  # a batch taken before `stop` is still finished
            try:
                return attempt(messages, careful)
            except RETRIED as exc:
                fatal = isinstance(exc, KafkaException) and (is_fatal(exc.args[0]) or left_group(exc))
                self.abort(exc)
                if fatal:
                    raise
                poison = poison_error(exc)
                if poison is not None:
                    self._poisoned(messages, attempt, poison)
                    return None
                cause = type(exc).__name__
                metrics.RETRIES.labels(self.name, cause).inc()
                if not careful and abortable(exc):  # which record failed? every one reports now
                    careful = True
                    continue
                log.warning("%s: batch aborted (%s: %s); retrying in %.1fs", self.name, cause, exc, delay)
                if self.stop.wait(delay):
                    return None
                delay = min(delay * 2, self.MAX_DELAY_S)
                if messages:  # the assignment may have changed while we waited
                    assigned = self.session.assigned()
                    messages = [m for m in messages if m.partition() in assigned]
                    if not messages:
                        return None

    def _poisoned(self, messages: list[Message], attempt: Attempt[R], error: KafkaError) -> None:
        if self.poison is PoisonPolicy.STOP or not messages:
            where = _where(messages[0]) if len(messages) == 1 else f"a batch of {len(messages)} records"
            raise PoisonRecord(f"{self.name}: the broker refused an output of {where}: {error.str()}")
        if len(messages) == 1:
            assert self.quarantine is not None
            self.quarantine(messages[0], error)
            return
        metrics.RETRIES.labels(self.name, "bisect").inc()
        middle = len(messages) // 2
        self.until_committed(messages[:middle], attempt, careful=True)
        self.until_committed(messages[middle:], attempt, careful=True)


def poison_error(exc: Exception) -> KafkaError | None:
    """The error of a record refused for what it is, if that is what `exc` says."""
    if isinstance(exc, PoisonOutput):
        return exc.error
    if isinstance(exc, KafkaException) and is_poison(exc.args[0]):
        return exc.args[0]
    return None


GROUP_LOST = frozenset(
    {KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION, KafkaError.FENCED_INSTANCE_ID}
)
"""What `send_offsets_to_transaction` answers once the consumer is no longer the group member
it was (it did not poll while the batch was retried, past the poll interval or the session)."""


def left_group(exc: KafkaException) -> bool:
    """The consumer lost its group membership: retrying the batch on it can only fail again (it
    rejoins only by polling), so the session ends and the stage's restart rejoins."""
    return bool(exc.args[0].code() in GROUP_LOST)


def abortable(exc: Exception) -> bool:
    """A failure that a refused record may have caused (a failed commit, a failed delivery),
    rather than a known passing condition (a registry outage, a misprediction, a timeout: the
    RetryBatch of a timeout says `within`)."""
    if isinstance(exc, KafkaException):
        return not exc.args[0].retriable()
    return type(exc) is RetryBatch and "within" not in str(exc)


def _where(msg: Message) -> str:
    return f"{msg.topic()}/{msg.partition()}/{msg.offset()}"
