"""`watermarks`: a partition the consumer's metadata does not know (yet, or no longer), or whose
read timed out, is retried with the topic's metadata asked for afresh; other errors are raised at
once."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from streams.kafka import clients
from streams.kafka.clients import watermarks


class FakeConsumer:
    """Fails `get_watermark_offsets` with `errors` in turn, then answers (3, 42); counts the
    metadata requests."""

    def __init__(self, *errors: int | KafkaError) -> None:
        self.errors = list(errors)
        self.metadata_asked: list[str] = []

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float) -> tuple[int, int]:
        if self.errors:
            error = self.errors.pop(0)
            raise KafkaException(error if isinstance(error, KafkaError) else KafkaError(error))
        return 3, 42

    def list_topics(self, topic: str, timeout: float) -> Any:
        self.metadata_asked.append(topic)
        return None


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clients.time, "sleep", lambda _s: None)


def test_an_unknown_partition_refreshes_the_topics_metadata_then_reads() -> None:
    consumer = FakeConsumer(KafkaError._UNKNOWN_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)
    assert watermarks(consumer, TopicPartition("events", 1)) == (3, 42)
    assert consumer.metadata_asked == ["events", "events"]


def test_a_timeout_is_retried_with_the_metadata_asked_afresh() -> None:
    """The cached leader may be a node that is gone (a rolling restart's)."""
    consumer = FakeConsumer(KafkaError._TIMED_OUT, KafkaError._TIMED_OUT)  # as librdkafka: not retriable
    assert watermarks(consumer, TopicPartition("events", 0)) == (3, 42)
    assert consumer.metadata_asked == ["events", "events"]


def test_another_error_is_raised_at_once() -> None:
    consumer = FakeConsumer(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException):
        watermarks(consumer, TopicPartition("events", 0))


def test_a_partition_still_unknown_after_the_wait_is_raised() -> None:
    consumer = FakeConsumer(*[KafkaError._UNKNOWN_PARTITION] * 1000)
    with pytest.raises(KafkaException):
        watermarks(consumer, TopicPartition("events", 0), wait_s=0.0)
    assert consumer.metadata_asked == []
