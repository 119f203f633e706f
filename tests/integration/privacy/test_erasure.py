"""Erasure on the real stack: the key row deleted, `SubjectForgotten` appended to the audited
privacy topic, and a listening worker's cached key evicted when it arrives."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import pytest
from confluent_kafka import TopicPartition

from streams.config import Settings
from streams.kafka.clients import reader, records
from streams.kafka.forgetting import ForgetListener, forget_subject
from streams.privacy.keys import Keyring
from streams.privacy.master import LocalMasterKey
from streams.privacy.postgres import PostgresKeyStore
from streams.wire.codec import AvroCodec
from streams.wire.forgotten import SubjectForgotten, forgotten_catalog
from streams.wire.topics import privacy_topic
from tests.conftest import StackEndpoints
from tests.integration.workers import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(stack: StackEndpoints, unique_name) -> Settings:  # type: ignore[no-untyped-def]
    return replace(Settings(), topic_prefix=unique_name("priv") + ".")


def test_forgetting_deletes_the_row_appends_the_audit_record_and_evicts_listening_workers(
    settings: Settings, store: PostgresKeyStore
) -> None:
    master = LocalMasterKey.parse(LocalMasterKey.generate())
    worker_ring = Keyring(store, master, ttl_s=3600)
    key = worker_ring.for_write("cust-A")
    worker_ring.for_write("cust-B")
    listener = ForgetListener(settings, lambda: [worker_ring])
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    try:
        wait_until(listener.ready.is_set, "the listener at the end of the privacy topic", 60, 0.1)
        done = forget_subject(settings, "cust-A", "test", keyring=Keyring(store, master))
        assert done.key_deleted and done.topic == privacy_topic(settings.topic_prefix)
        assert store.subjects() == ["cust-B"]
        wait_until(lambda: worker_ring._cached("cust-A") is None, "the eviction", 30, 0.1)
        assert worker_ring.for_read("cust-A", key.key_id) is None
    finally:
        listener.stop()
        thread.join(10)
    again = forget_subject(settings, "cust-A", "test", keyring=Keyring(store, master))
    assert not again.key_deleted and again.offset == done.offset + 1

    consumer = reader(settings)
    consumer.assign([TopicPartition(done.topic, 0, 0)])
    codec = AvroCodec.connect(forgotten_catalog(), settings.registry_url, settings.topic_prefix)
    seen: list[SubjectForgotten] = []
    deadline = time.monotonic() + 30
    while len(seen) < 2 and time.monotonic() < deadline:
        for msg in records(consumer.consume(10, 1.0), "test"):
            assert msg.key() == b"cust-A"
            seen.append(codec.decode(msg.value()).message)
    consumer.close()
    assert [(f.subject, f.key_deleted, f.origin) for f in seen] == [
        ("cust-A", True, "test"),
        ("cust-A", False, "test"),
    ]
