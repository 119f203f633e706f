"""The transactional stage loop without Kafka: retries, aborts, fatal errors, the poison policies
(bisect and quarantine, or stop) and the produce call that waits for room in the queue."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streams.config import Settings
from streams.kafka.clients import produce
from streams.kafka.transaction import (
    AmbiguousOutcome,
    PoisonOutput,
    PoisonPolicy,
    PoisonRecord,
    RetryBatch,
    TransactionalSession,
    TransactionLoop,
)

TOO_LARGE = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)


class FakeMessage:
    """A consumed record: topic, partition, offset."""

    def __init__(self, partition: int, offset: int) -> None:
        self._partition, self._offset = partition, offset

    def topic(self) -> str:
        return "in"

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def __repr__(self) -> str:
        return f"<{self._partition}/{self._offset}>"


class FakeProducer:
    """Counts the transaction calls; `commit_errors` (`abort_errors`) are raised by the next
    commits (aborts)."""

    def __init__(
        self, commit_errors: list[KafkaError] | None = None, abort_errors: list[KafkaError] | None = None
    ) -> None:
        self.calls: list[str] = []
        self.commit_errors = list(commit_errors or [])
        self.abort_errors = list(abort_errors or [])
        self.full = 0
        self.produced: list[tuple[str, bytes | None, bytes | None, dict[str, Any]]] = []

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def commit_transaction(self, _timeout: float) -> None:
        self.calls.append("commit")
        if self.commit_errors:
            raise KafkaException(self.commit_errors.pop(0))

    def abort_transaction(self, _timeout: float) -> None:
        self.calls.append("abort")
        if self.abort_errors:
            raise KafkaException(self.abort_errors.pop(0))

    def send_offsets_to_transaction(self, offsets: list[TopicPartition], _meta: object, _t: float) -> None:
        self.calls.append(f"offsets {[(tp.partition, tp.offset) for tp in offsets]}")

    def flush(self, _timeout: float) -> int:
        return 0

    def produce(self, topic: str, value: bytes | None, key: bytes | None, **kw: Any) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("queue full")
        self.produced.append((topic, value, key, kw))

    def poll(self, _timeout: float) -> int:
        self.calls.append("poll")
        return 0


class FakeConsumer:
    def __init__(self, partitions: set[int]) -> None:
        self.partitions = partitions

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("in", p) for p in sorted(self.partitions)]

    def consumer_group_metadata(self) -> object:
        return object()


def session(producer: FakeProducer, partitions: set[int] = frozenset({0, 1})) -> TransactionalSession:  # type: ignore[assignment]
    """A session whose clients are the fakes (as if `open` had built them)."""
    made = TransactionalSession(Settings(), "test", group_id="g", transactional_id="t")
    made._producer = producer  # type: ignore[assignment]
    made._consumer = FakeConsumer(set(partitions))  # type: ignore[assignment]
    return made


def loop(
    producer: FakeProducer, policy: PoisonPolicy = PoisonPolicy.QUARANTINE, **kw: Any
) -> TransactionLoop:
    quarantined = kw.pop("quarantined", [])
    made = TransactionLoop(
        session(producer, **kw),
        threading.Event(),
        poison=policy,
        quarantine=lambda msg, error: quarantined.append((msg, error)),
    )
    made.FIRST_DELAY_S = 0.01
    return made


def failing(*errors: Exception) -> tuple[list[tuple[list[Any], bool]], Any]:
    """An attempt that raises `errors` one by one, then commits; and the list of its calls."""
    calls: list[tuple[list[Any], bool]] = []
    left = list(errors)

    def attempt(messages: list[Any], careful: bool) -> str:
        calls.append((list(messages), careful))
        if left:
            raise left.pop(0)
        return "committed"

    return calls, attempt


def test_a_retriable_error_is_retried_after_the_back_off_and_then_commits() -> None:
    producer = FakeProducer()
    stage = loop(producer)
    retriable = KafkaException(KafkaError(KafkaError._TIMED_OUT, retriable=True))
    calls, attempt = failing(retriable, RetryBatch("events not acknowledged within 20s"))
    waits: list[float] = []
    stage.stop = _RecordingStop(waits)
    messages = [FakeMessage(0, 1), FakeMessage(1, 2)]
    assert stage.until_committed(messages, attempt) == "committed"
    assert len(calls) == 3 and not any(careful for _, careful in calls)  # a passing condition
    assert producer.calls == ["abort", "abort"]
    assert waits == [0.01, 0.02]  # the back-off doubles


def test_an_abortable_error_aborts_and_runs_the_batch_again_carefully_at_once() -> None:
    producer = FakeProducer()
    stage = loop(producer)
    needs_abort = KafkaException(KafkaError(KafkaError._STATE, txn_requires_abort=True))
    calls, attempt = failing(needs_abort)
    waits: list[float] = []
    stage.stop = _RecordingStop(waits)
    assert stage.until_committed([FakeMessage(0, 1)], attempt) == "committed"
    assert [careful for _, careful in calls] == [False, True]
    assert producer.calls == ["abort"] and waits == []


def test_the_retry_keeps_only_the_records_of_partitions_still_owned() -> None:
    producer = FakeProducer()
    stage = loop(producer, partitions={1})
    calls, attempt = failing(RetryBatch("records not acknowledged within the call timeout"))
    messages = [FakeMessage(0, 1), FakeMessage(1, 2)]
    assert stage.until_committed(messages, attempt) == "committed"
    assert [m.partition() for m in calls[1][0]] == [1]
    calls, attempt = failing(RetryBatch("records not acknowledged within the call timeout"))
    assert stage.until_committed([FakeMessage(0, 1)], attempt) is None  # revoked: nothing left
    assert len(calls) == 1


def test_a_fatal_error_aborts_and_is_raised() -> None:
    producer = FakeProducer()
    stage = loop(producer)
    calls, attempt = failing(KafkaException(KafkaError(KafkaError._FENCED, fatal=True)))
    with pytest.raises(KafkaException):
        stage.until_committed([FakeMessage(0, 1)], attempt)
    assert len(calls) == 1 and producer.calls == ["abort"]


def test_a_lost_group_membership_aborts_and_ends_the_session() -> None:
    producer = FakeProducer()
    stage = loop(producer)
    lost = KafkaException(KafkaError(KafkaError.UNKNOWN_MEMBER_ID, txn_requires_abort=True))
    calls, attempt = failing(lost)
    with pytest.raises(KafkaException):
        stage.until_committed([FakeMessage(0, 1)], attempt)
    assert len(calls) == 1 and producer.calls == ["abort"]


def test_a_commit_asks_for_an_abort_when_the_broker_does_and_raises_a_fatal_error() -> None:
    producer = FakeProducer([KafkaError(KafkaError._STATE, txn_requires_abort=True)])
    with pytest.raises(RetryBatch, match="commit needs abort"):
        session(producer).commit()
    producer = FakeProducer([KafkaError(KafkaError._FENCED, fatal=True)])
    with pytest.raises(KafkaException):
        session(producer).commit()


TIMED_OUT = KafkaError(KafkaError._TIMED_OUT, retriable=True)


def test_a_commit_that_timed_out_is_not_retried_on_the_same_producer() -> None:
    producer = FakeProducer([TIMED_OUT])
    with pytest.raises(AmbiguousOutcome, match="commit outcome unknown"):
        session(producer).commit()
    assert producer.calls == ["commit"]  # once: neither retried nor aborted


def test_an_ambiguous_commit_ends_the_session_so_that_a_new_producer_fences_the_old() -> None:
    producer = FakeProducer([TIMED_OUT])
    stage = loop(producer)
    calls: list[list[Any]] = []

    def attempt(messages: list[Any], _careful: bool) -> str:
        calls.append(messages)
        stage.session.commit()
        return "committed"

    with pytest.raises(AmbiguousOutcome):
        stage.until_committed([FakeMessage(0, 1)], attempt)
    assert len(calls) == 1 and producer.calls == ["commit"]  # the batch is not run again


def test_an_abort_that_timed_out_is_ambiguous_one_with_no_transaction_open_is_not() -> None:
    producer = FakeProducer(abort_errors=[TIMED_OUT])
    stage = loop(producer)
    calls, attempt = failing(RetryBatch("records not acknowledged within the call timeout"))
    with pytest.raises(AmbiguousOutcome, match="abort outcome unknown"):
        stage.until_committed([FakeMessage(0, 1)], attempt)
    assert len(calls) == 1
    producer = FakeProducer(abort_errors=[KafkaError(KafkaError._STATE)])
    session(producer).abort()  # nothing to abort: ignored, as before
    assert producer.calls == ["abort"]


def poisoned_by(poison: FakeMessage, committed: list[list[FakeMessage]]) -> Any:
    """An attempt that fails while `poison` is in the batch (seen only when careful, like a
    refused record's delivery report), and commits any other batch."""

    def attempt(messages: list[FakeMessage], careful: bool) -> str:
        if poison in messages:
            if careful:
                raise PoisonOutput(TOO_LARGE)
            raise RetryBatch("records not acknowledged: Broker: Message size too large")
        committed.append(messages)
        return "committed"

    return attempt


def test_a_poison_record_is_bisected_down_to_itself_and_quarantined() -> None:
    producer = FakeProducer()
    quarantined: list[Any] = []
    stage = loop(producer, PoisonPolicy.QUARANTINE, quarantined=quarantined)
    messages = [FakeMessage(0, offset) for offset in range(8)]
    committed: list[list[FakeMessage]] = []
    stage.until_committed(messages, poisoned_by(messages[5], committed))
    assert quarantined == [(messages[5], TOO_LARGE)]
    assert sorted(m.offset() for batch in committed for m in batch) == [0, 1, 2, 3, 4, 6, 7]


def test_a_poison_record_stops_a_stage_whose_policy_is_stop() -> None:
    producer = FakeProducer()
    quarantined: list[Any] = []
    stage = loop(producer, PoisonPolicy.STOP, quarantined=quarantined)
    messages = [FakeMessage(0, offset) for offset in range(8)]
    committed: list[list[FakeMessage]] = []
    with pytest.raises(PoisonRecord, match="Message size too large"):
        stage.until_committed(messages, poisoned_by(messages[5], committed))
    assert not committed and not quarantined
    assert producer.calls[-1] == "abort"


def test_a_poison_output_of_a_batch_without_records_stops_the_stage_under_either_policy() -> None:
    _calls, attempt = failing(PoisonOutput(TOO_LARGE))
    with pytest.raises(PoisonRecord):
        loop(FakeProducer(), PoisonPolicy.QUARANTINE).until_committed([], attempt)


def test_the_quarantine_policy_needs_a_quarantine() -> None:
    with pytest.raises(ValueError, match="needs a quarantine"):
        TransactionLoop(session(FakeProducer()), threading.Event(), poison=PoisonPolicy.QUARANTINE)


def test_produce_polls_and_retries_while_the_queue_is_full() -> None:
    producer = FakeProducer()
    producer.full = 2
    produce(producer, "out", b"v", b"k", partition=3, timestamp=0)  # type: ignore[arg-type]
    assert producer.calls == ["poll", "poll"]
    assert producer.produced == [("out", b"v", b"k", {"partition": 3})]  # timestamp 0: the producer's


class _RecordingStop(threading.Event):
    """A stop event that records the back-off waits instead of sleeping."""

    def __init__(self, waits: list[float]) -> None:
        super().__init__()
        self.waits = waits

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return False
