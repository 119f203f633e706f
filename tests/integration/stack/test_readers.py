"""Reading what a transaction has just committed, on the real broker (`streams.kafka.readers`).

A `read_committed` consumer's high watermark is the last stable offset, and `commit_transaction`
returns before the broker has written the transaction's markers: read right after a commit, a
partition could look empty (`streams rebuild` then `streams verify` lost whole partitions that
way under load). `wait_until_readable` closes that gap.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.config import Settings
from streams.kafka import clients
from streams.kafka.readers import read_partition, wait_until_readable

pytestmark = pytest.mark.integration

PARTITIONS = 4
PER_PARTITION = 50


def _topic(bootstrap: str, name: str) -> str:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=-1)])[name].result()
    return name


def _transaction(settings: Settings, topic: str) -> Any:
    producer = clients.transactional_producer(settings, f"readers-{uuid.uuid4().hex}")
    producer.init_transactions(30)
    producer.begin_transaction()
    for p in range(PARTITIONS):
        for i in range(PER_PARTITION):
            producer.produce(topic, f"v{i}".encode(), f"k{i}".encode(), partition=p)
    producer.flush(30)
    return producer


def test_a_transaction_just_committed_is_read_in_full(stack: Any, unique_name: Any) -> None:
    settings = replace(Settings(), bootstrap=stack.bootstrap)
    for round_ in range(20):  # the gap is a race: without the wait, a few rounds in 20 hit it
        topic = _topic(stack.bootstrap, unique_name(f"readers-{round_}"))
        _transaction(settings, topic).commit_transaction(60)
        assert wait_until_readable(settings, topic, range(PARTITIONS))
        assert [len(read_partition(settings, topic, p)) for p in range(PARTITIONS)] == [PER_PARTITION] * 4


def test_an_open_transaction_is_waited_for_only_until_the_timeout(stack: Any, unique_name: Any) -> None:
    settings = replace(Settings(), bootstrap=stack.bootstrap)
    topic = _topic(stack.bootstrap, unique_name("readers-open"))
    producer = _transaction(settings, topic)
    try:
        assert wait_until_readable(settings, topic, range(PARTITIONS), timeout_s=1.0) is False
        assert [len(read_partition(settings, topic, p)) for p in range(PARTITIONS)] == [0] * 4
    finally:
        producer.abort_transaction(30)
