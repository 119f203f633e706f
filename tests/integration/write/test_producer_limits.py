"""The producers' own record limit agrees with the project's topics: a record between
librdkafka's default 1,000,000 bytes and a topic's 1 MiB, and a DLQ record of several MiB, are
produced, not refused by the client, and read back whole."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message

from streams.client import read_topic
from streams.config import Settings
from streams.contexts.orders import context as orders
from streams.kafka import clients
from streams.kafka.runtime import ContextRuntime
from tests.conftest import StackEndpoints

pytestmark = pytest.mark.integration


def produced(producer: Any, topic: str, value: bytes) -> KafkaError | None:
    """Produce one record and wait for its delivery: its error (None: delivered)."""
    outcome: list[KafkaError | None] = []

    def report(err: KafkaError | None, _msg: Message) -> None:
        outcome.append(err)

    try:
        producer.produce(topic, value, b"key", on_delivery=report)
    except Exception as exc:  # librdkafka refuses a record over its message.max.bytes at once
        return exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else KafkaError(-1, str(exc))
    producer.flush(60)
    return outcome[0] if outcome else KafkaError(-1, "no delivery report")


def test_records_up_to_the_topics_limits_are_produced_and_nothing_is_lost(stack: StackEndpoints) -> None:
    prefix = f"pl{uuid.uuid4().hex[:8]}."
    settings = Settings(topic_prefix=prefix, partitions=1)
    runtime = ContextRuntime.connect(settings, orders, retry_for_s=30)
    runtime.ensure_topics(settings)
    topics = runtime.topics
    view_sized = os.urandom(1_040_000)  # over librdkafka's default, under the topics' 1 MiB
    dlq_sized = os.urandom(5 * 1024 * 1024)  # under the DLQ topics' 8 MiB

    assert produced(clients.producer(settings), topics.commands, view_sized) is None
    assert produced(clients.write_producer(settings, None), topics.dlq, dlq_sized) is None
    # the broker's own limit still holds: over 1 MiB on a 1 MiB topic is refused by the broker
    too_big = produced(clients.producer(settings), topics.results, os.urandom(1024 * 1024 + 10))
    assert too_big is not None and too_big.code() == KafkaError.MSG_SIZE_TOO_LARGE

    views = [m.value() for m in read_topic(settings, topics.commands, idle_timeout=2.0)]
    letters = [m.value() for m in read_topic(settings, topics.dlq, idle_timeout=2.0)]
    assert views == [view_sized] and letters == [dlq_sized]
