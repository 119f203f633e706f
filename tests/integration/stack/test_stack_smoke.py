"""Smoke tests of the local stack (ops/stack.sh): registry, transactional Avro, JDBC sink.

They run against the real services (no mocks) through the `stack` fixture of tests/conftest.py.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from psycopg import sql

from tests.integration.workers import wait_until

pytestmark = pytest.mark.integration

SMOKE_SCHEMA = """
{
  "type": "record",
  "name": "SmokeEvent",
  "namespace": "streams.smoke",
  "fields": [
    {"name": "id", "type": "string"},
    {"name": "amount", "type": "long"},
    {"name": "note", "type": ["null", "string"], "default": null}
  ]
}
"""


def _sql_name(name: str) -> str:
    """A unique test name as a safe, unquoted SQL identifier."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower())[:60]


def _topic_name(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9._-]", "-", name)


def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=-1)])
    for future in futures.values():
        future.result(timeout=30)


def _consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"smoke-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                # read a little past the expected count so a wrongly visible record shows up
                if len(messages) >= expected and time.monotonic() > deadline - timeout + 5:
                    break
                continue
            if msg.error():
                raise KafkaException(msg.error())
            messages.append(msg)
    finally:
        consumer.close()
    return messages


def test_registry_register_and_fetch(stack: Any, unique_name: Any) -> None:
    client = SchemaRegistryClient({"url": stack.registry_url, "timeout": 30})
    subject = f"{_topic_name(unique_name('smoke'))}-value"
    schema_id = client.register_schema(subject, Schema(SMOKE_SCHEMA, "AVRO"))
    assert schema_id > 0

    fetched = client.get_schema(schema_id)
    assert fetched.schema_type == "AVRO"
    assert '"SmokeEvent"' in fetched.schema_str

    latest = client.get_latest_version(subject)
    assert latest.schema_id == schema_id
    assert latest.version == 1
    assert subject in client.get_subjects()
    # registering the same schema again is idempotent
    assert client.register_schema(subject, Schema(SMOKE_SCHEMA, "AVRO")) == schema_id


def test_registry_refuses_deletion(stack: Any, unique_name: Any) -> None:
    """Deletion is off in the stack's registry: its own API refuses to delete an artifact (a
    subject) or one of its versions (405), its admin API cannot turn deletion back on, and the
    schema stays registered. Apicurio's
    Confluent-compatible API does not consult these flags (docs/security.md)."""
    client = SchemaRegistryClient({"url": stack.registry_url, "timeout": 30})
    subject = f"{_topic_name(unique_name('nodelete'))}-value"
    schema_id = client.register_schema(subject, Schema(SMOKE_SCHEMA, "AVRO"))
    native = stack.registry_url.split("/apis/", 1)[0] + "/apis/registry/v3"
    with httpx.Client(base_url=native, timeout=30) as http:
        artifact = f"/groups/default/artifacts/{subject}"
        for path in (f"{artifact}/versions/1", artifact):
            answer = http.delete(path)
            assert answer.status_code == 405, (path, answer.status_code, answer.text)
            assert "not enabled" in answer.json()["title"]
        # and nobody can turn it back on at run time
        answer = http.put(
            "/admin/config/properties/apicurio.rest.deletion.artifact.enabled", json={"value": "true"}
        )
        assert answer.status_code == 404, answer.text
    assert client.get_latest_version(subject).schema_id == schema_id
    assert client.get_schema(schema_id).schema_type == "AVRO"


def test_transactional_avro_roundtrip(stack: Any, unique_name: Any) -> None:
    topic = _topic_name(unique_name("smoke-tx"))
    _create_topic(stack.bootstrap, topic)
    registry = SchemaRegistryClient({"url": stack.registry_url, "timeout": 30})
    serializer = AvroSerializer(registry, SMOKE_SCHEMA)
    ctx = SerializationContext(topic, MessageField.VALUE)

    producer = Producer(
        {"bootstrap.servers": stack.bootstrap, "transactional.id": f"smoke-{uuid.uuid4().hex}"}
    )
    producer.init_transactions(30)

    producer.begin_transaction()
    for i in range(3):
        value = {"id": f"c{i}", "amount": i, "note": "committed"}
        producer.produce(topic, key=f"c{i}".encode(), value=serializer(value, ctx))
    producer.commit_transaction(30)

    producer.begin_transaction()
    producer.produce(topic, key=b"a0", value=serializer({"id": "a0", "amount": 99, "note": "aborted"}, ctx))
    producer.flush(30)
    producer.abort_transaction(30)

    producer.begin_transaction()
    producer.produce(topic, key=b"c3", value=serializer({"id": "c3", "amount": 3, "note": None}, ctx))
    producer.commit_transaction(30)

    deserializer = AvroDeserializer(registry)
    messages = _consume_all(stack.bootstrap, topic, expected=4)
    values = [deserializer(m.value(), ctx) for m in messages]
    assert [v["id"] for v in values] == ["c0", "c1", "c2", "c3"]
    assert all(v["note"] != "aborted" for v in values)
    assert values[3] == {"id": "c3", "amount": 3, "note": None}
    # Confluent wire format: magic byte 0 + 4-byte big-endian schema id
    raw = messages[0].value()
    assert raw[0] == 0
    assert int.from_bytes(raw[1:5], "big") == registry.get_latest_version(f"{topic}-value").schema_id


def test_jdbc_sink_copies_avro_topic_to_postgres(stack: Any, unique_name: Any) -> None:
    name = unique_name("smoke-sink")
    topic = _topic_name(name)
    table = _sql_name(name)
    connector = f"smoke-sink-{uuid.uuid4().hex[:8]}"
    _create_topic(stack.bootstrap, topic)

    registry = SchemaRegistryClient({"url": stack.registry_url, "timeout": 30})
    serializer = AvroSerializer(registry, SMOKE_SCHEMA)
    ctx = SerializationContext(topic, MessageField.VALUE)
    producer = Producer(
        {"bootstrap.servers": stack.bootstrap, "transactional.id": f"smoke-{uuid.uuid4().hex}"}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(5):
        value = {"id": f"r{i}", "amount": 100 + i, "note": None if i % 2 else f"n{i}"}
        producer.produce(topic, key=f"r{i}".encode(), value=serializer(value, ctx))
    producer.commit_transaction(30)

    # registry base URL for the Apicurio converter (v2 core API of the same registry)
    registry_core = stack.registry_url.split("/apis/")[0] + "/apis/registry/v2"
    pg = psycopg.conninfo.conninfo_to_dict(stack.pg_dsn)
    config = {
        "connector.class": "io.debezium.connector.jdbc.JdbcSinkConnector",
        "tasks.max": "1",
        "topics": topic,
        "connection.url": f"jdbc:postgresql://{pg['host']}:{pg['port']}/{pg['dbname']}",
        "connection.username": pg["user"],
        "connection.password": pg["password"],
        "insert.mode": "upsert",
        "primary.key.mode": "record_value",
        "primary.key.fields": "id",
        "schema.evolution": "basic",
        "collection.name.format": table,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "io.apicurio.registry.utils.converter.AvroConverter",
        "value.converter.apicurio.registry.url": registry_core,
        "value.converter.apicurio.registry.as-confluent": "true",
        "value.converter.apicurio.registry.use-id": "contentId",
        "value.converter.apicurio.registry.headers.enabled": "false",
        "consumer.override.isolation.level": "read_committed",
        "consumer.override.auto.offset.reset": "earliest",
        "errors.tolerance": "none",
    }
    with httpx.Client(base_url=stack.connect_url, timeout=30) as http:
        resp = http.put(f"/connectors/{connector}/config", json=config)
        assert resp.status_code in (200, 201), resp.text
        try:
            with psycopg.connect(stack.pg_dsn, autocommit=True) as conn:

                def sunk() -> list[tuple[Any, ...]] | None:
                    """The five rows, or None; a failed task fails the test at once."""
                    status = http.get(f"/connectors/{connector}/status").json()
                    failed = [t for t in status.get("tasks", []) if t.get("state") == "FAILED"]
                    assert not failed, failed[0].get("trace", "")[:3000]
                    exists = conn.execute("select to_regclass(%s)", (table,)).fetchone()
                    if not exists or exists[0] is None:
                        return None
                    query = sql.SQL("select id, amount, note from {} order by id")
                    found = conn.execute(query.format(sql.Identifier(table))).fetchall()
                    return found if len(found) == 5 else None

                rows = wait_until(sunk, f"five rows in {table}", 90)
            assert rows == [
                ("r0", 100, "n0"),
                ("r1", 101, None),
                ("r2", 102, "n2"),
                ("r3", 103, None),
                ("r4", 104, "n4"),
            ]
        finally:
            http.delete(f"/connectors/{connector}")
            with psycopg.connect(stack.pg_dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(table)))
