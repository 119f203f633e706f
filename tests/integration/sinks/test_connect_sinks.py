"""Kafka Connect sinks on the real stack: worker -> derived sink topics -> JDBC sink -> PostgreSQL.

The connectors run on a private Connect worker process started by this module (own REST port,
group id and internal topics; same Kafka lib dir and plugin path as ops/stack.sh), so that it can
be restarted without touching the shared stack's Connect.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from click.testing import CliRunner
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from streams.cli.main import main as cli
from streams.client import CommandClient, read_topic
from streams.config import Settings
from streams.contexts.orders import AddItem, ConfirmOrder, OrderPlaced, PlaceOrder
from streams.kafka.runtime import ensure_topics
from streams.sinks.connect import ConnectClient, deploy, sink_lag, status
from streams.sinks.rows import SnapshotRow, sink_codec
from streams.wire import headers as h
from streams.wire.topics import TopicSpec
from tests.conftest import StackEndpoints
from tests.integration.kafka_config import kafka_config
from tests.integration.sinks.kit import PrivateConnect, query, sink_settings, wait_for
from tests.integration.workers import Deployment, deployed, wait_until, warmed_client

pytestmark = pytest.mark.integration

DOC_SCHEMA = {
    "type": "record",
    "name": "ReadModelDocument",
    "namespace": "streams",
    "fields": [
        {"name": "entity_id", "type": "string"},
        {"name": "entity_type", "type": "string"},
        {"name": "state", "type": {"type": "string", "connect.name": "io.debezium.data.Json"}},
        {"name": "last_event_version", "type": "long"},
        {"name": "last_updated", "type": "string"},
    ],
}


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployed(
        tmp_path_factory.mktemp("worker"),
        "s",
        STREAMS_SNAPSHOT_EVERY="3",
        STREAMS_SINK_VIEWS="test-view,order-summary",
    ) as dep:
        yield dep


@pytest.fixture(scope="module")
def settings(deployment: Deployment, connect: PrivateConnect) -> Iterator[Settings]:
    with sink_settings(deployment, connect, sink_views=("test-view", "order-summary")) as s:
        yield s


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[CommandClient]:
    with warmed_client(settings) as c:
        yield c


def log_event_ids(settings: Settings, client: CommandClient) -> list[str]:
    return [
        h.as_dict(m.headers())[h.EVENT_ID]
        for m in read_topic(settings, client.runtime.topics.events, idle_timeout=1.0)
    ]


def test_deploy_creates_tables_and_running_connectors(settings: Settings, client: CommandClient) -> None:
    names = deploy(settings)
    assert len(names) == 3
    tables = {
        (r[0], r[1])
        for r in query(
            settings,
            "select table_name, table_type from information_schema.tables where table_schema = %s",
            settings.sink_schema,
        )
    }
    # the seed's three tables, and the typed view over devices' window rows (002_telemetry.sql)
    assert tables == {
        ("eventstore", "BASE TABLE"),
        ("genericreadmodel", "BASE TABLE"),
        ("genericsnapshots", "BASE TABLE"),
        ("telemetry_10s", "VIEW"),
    }
    indexes = {
        r[0]
        for r in query(
            settings, "select indexname from pg_indexes where schemaname = %s", settings.sink_schema
        )
    }
    assert {
        "idx_aggregate_id",
        "idx_aggregate_type",
        "idx_event_type",
        "idx_entity_type",
        "idx_last_event_version",
        "idx_snapshot_type",
    } <= indexes
    wait_for(
        settings,
        lambda: all(
            e["state"] == "RUNNING" and e.get("tasks") and all(t["state"] == "RUNNING" for t in e["tasks"])
            for e in status(settings)
        ),
        "connectors running",
    )
    # the connectors name the credentials file; no password is stored in or shown by Connect
    password = str(psycopg.conninfo.conninfo_to_dict(settings.pg_dsn)["password"])
    for name in names:
        config = httpx.get(f"{settings.connect_url}/connectors/{name}/config", timeout=10).json()
        assert config["connection.password"] == f"${{file:{settings.connect_secrets}:password}}"
        assert password not in config.values()
    assert oct(settings_secrets_mode(settings)) == "0o600"


def settings_secrets_mode(settings: Settings) -> int:
    """The permission bits of the credentials file."""
    return Path(settings.connect_secrets).stat().st_mode & 0o777


def test_commands_become_jsonb_rows_with_history_in_order(settings: Settings, client: CommandClient) -> None:
    assert client.execute("o-sql-1", PlaceOrder("cust-42", "EUR")).accepted
    assert client.execute("o-sql-1", AddItem("widget", 2, 250)).accepted
    assert client.execute("o-sql-1", AddItem("gadget", 1, 999)).accepted
    assert client.execute("o-sql-1", ConfirmOrder()).accepted

    rows = wait_for(
        settings,
        lambda: (
            (
                r := query(
                    settings,
                    "select Version, EventType from {s}.EventStore where AggregateID = %s order by Version",
                    "o-sql-1",
                )
            )
            and len(r) == 4
            and r
        ),
        "4 rows of o-sql-1",
    )
    assert rows == [(1, "OrderPlaced"), (2, "ItemAdded"), (3, "ItemAdded"), (4, "OrderConfirmed")]
    # EventData and Metadata are real JSONB
    assert query(
        settings,
        "select EventData->>'customer_id', jsonb_typeof(EventData), "
        "Metadata->>'command_id' is not null, AggregateType from {s}.EventStore "
        "where AggregateID = %s and Version = 1",
        "o-sql-1",
    ) == [("cust-42", "object", True, "Order")]
    assert query(settings, "select count(*) from {s}.EventStore where EventData->>'sku' = 'gadget'") == [(1,)]
    assert query(
        settings, "select pg_typeof(EventData)::text, pg_typeof(EventID)::text from {s}.EventStore limit 1"
    ) == [("jsonb", "uuid")]
    # the snapshot taken at version 3 (STREAMS_SNAPSHOT_EVERY=3)
    # the read side's real order-summary view, copied into GenericReadModel
    summary = wait_for(
        settings,
        lambda: query(
            settings,
            "select LastEventVersion, State->>'status', jsonb_typeof(State) from {s}.GenericReadModel "
            "where EntityID = %s and EntityType = 'orders.order-summary' and LastEventVersion = 4",
            "o-sql-1",
        ),
        "order-summary row at version 4",
    )
    assert summary[0][0] == 4 and summary[0][2] == "object" and summary[0][1], summary
    snap = wait_for(
        settings,
        lambda: query(
            settings,
            "select LastEventVersion, SnapshotData->'lines'->0->>'sku', "
            "AggregateType from {s}.GenericSnapshots where AggregateID = %s",
            "o-sql-1",
        ),
        "snapshot row",
    )
    assert snap[0][0] >= 3 and snap[0][1] == "widget" and snap[0][2] == "Order"


def produce_view_doc(settings: Settings, topic: str, key: str, doc: dict[str, Any] | None) -> None:
    registry = SchemaRegistryClient({"url": settings.registry_url, "timeout": 30})
    schema_id = registry.register_schema("streams.ReadModelDocument", Schema(json.dumps(DOC_SCHEMA), "AVRO"))
    import io

    import fastavro

    value = None
    if doc is not None:
        out = io.BytesIO()
        out.write(b"\x00" + schema_id.to_bytes(4, "big"))
        fastavro.schemaless_writer(out, fastavro.parse_schema(DOC_SCHEMA), doc)
        value = out.getvalue()
    producer = Producer(kafka_config(settings.bootstrap))
    producer.produce(topic, value, key.encode())
    assert producer.flush(30) == 0


def test_read_model_upsert_and_tombstone_delete(settings: Settings, client: CommandClient) -> None:
    # The read side's view topics are built by another module; this test writes a view topic in
    # its contract (streams.ReadModelDocument, state as JSON text) itself.
    topic = f"{settings.topic_prefix}orders.test-view"
    ensure_topics(settings, [TopicSpec(topic, settings.partitions, {"cleanup.policy": "compact"})])
    doc = {
        "entity_id": "o-rm-1",
        "entity_type": "Order",
        "state": json.dumps({"status": "placed", "total": 5}),
        "last_event_version": 1,
        "last_updated": "2026-01-01T00:00:00.000Z",
    }
    produce_view_doc(settings, topic, "o-rm-1", doc)
    produce_view_doc(settings, topic, "o-rm-2", {**doc, "entity_id": "o-rm-2"})
    produce_view_doc(
        settings,
        topic,
        "o-rm-1",
        {**doc, "state": json.dumps({"status": "confirmed", "total": 7}), "last_event_version": 2},
    )
    rows = wait_for(
        settings,
        lambda: (
            (
                r := query(
                    settings,
                    "select EntityID, EntityType, State->>'status', (State->>'total')::int, "
                    "LastEventVersion from {s}.GenericReadModel where EntityType = 'orders.test-view' "
                    "order by EntityID",
                )
            )
            and len(r) == 2
            and r[0][4] == 2
            and r
        ),
        "two read-model rows",
    )
    assert rows == [
        ("o-rm-1", "orders.test-view", "confirmed", 7, 2),
        ("o-rm-2", "orders.test-view", "placed", 5, 1),
    ]
    produce_view_doc(settings, topic, "o-rm-1", None)
    wait_for(
        settings,
        lambda: (
            query(settings, "select EntityID from {s}.GenericReadModel where EntityType = 'orders.test-view'")
            == [("o-rm-2",)]
        ),
        "tombstone deletes o-rm-1",
    )


def test_one_row_per_event_across_a_connect_worker_restart(
    settings: Settings, client: CommandClient, connect: PrivateConnect
) -> None:
    for i in range(20):
        client.send(f"o-rs-{i % 5}", PlaceOrder(f"c{i}") if i < 5 else AddItem(f"sku-{i}", 1, 100))
    client.flush()
    wait_for(
        settings,
        lambda: (
            query(settings, "select count(*) from {s}.EventStore where AggregateID like 'o-rs-%%'")[0][0] >= 5
        ),
        "first rows",
    )
    connect.stop()  # mid-stream: the tasks' offsets may lag the rows already written
    for i in range(20, 40):
        client.send(f"o-rs-{i % 5}", AddItem(f"sku-{i}", 1, 100))
    client.flush()
    connect.start()
    expected = set(log_event_ids(settings, client))
    wait_for(
        settings,
        lambda: query(settings, "select count(*) from {s}.EventStore")[0][0] == len(expected),
        f"{len(expected)} rows",
        timeout=120,
    )
    rows = query(settings, "select EventID::text from {s}.EventStore")
    assert sorted(r[0] for r in rows) == sorted(expected)
    for i in range(5):
        versions = [
            r[0]
            for r in query(
                settings,
                "select Version from {s}.EventStore where AggregateID = %s order by Version",
                f"o-rs-{i}",
            )
        ]
        assert versions == list(range(1, len(versions) + 1))


LOAD_S, LOAD_PER_S = 20, 25
LAG_BOUND = 10 * LOAD_PER_S
"""At most this many records behind while the load runs: ten seconds of it (Connect commits its
offsets every second; a loaded 2-core machine stalls a few)."""


def test_sink_lag_under_steady_command_load(settings: Settings, client: CommandClient) -> None:
    """The EventStore connector under ~25 commands/s: its lag stays bounded, and once the load
    stops every event is a row within a minute (the figure printed for the closing note)."""
    name = f"{settings.topic_prefix}orders-eventstore-sink"
    topic = f"{settings.topic_prefix}orders.events-sink"
    samples: list[int] = []
    sent = 0
    start = time.monotonic()
    while time.monotonic() - start < LOAD_S:
        for _ in range(LOAD_PER_S // 5):
            client.send(f"o-load-{sent % 50}", PlaceOrder("c") if sent < 50 else AddItem(f"k{sent}", 1, 1))
            sent += 1
        client.flush()
        samples.append(sink_lag(settings, name, topic)["lag"])
        time.sleep(0.2)  # the load's pace, not a wait
    loaded = time.monotonic()

    def rows() -> int:
        return int(
            query(settings, "select count(*) from {s}.EventStore where AggregateID like 'o-load-%%'")[0][0]
        )

    wait_for(settings, lambda: rows() >= sent, f"all {sent} events of the load in PostgreSQL", timeout=60)
    drained_s = time.monotonic() - loaded
    assert rows() == sent  # one event a command, each once
    print(
        f"\nsink lag under {sent / LOAD_S:.0f} commands/s: max {max(samples)} records, "
        f"median {sorted(samples)[len(samples) // 2]}; all rows in {drained_s:.1f} s after the load"
    )
    assert max(samples) <= LAG_BOUND, samples
    assert wait_for(settings, lambda: sink_lag(settings, name, topic)["lag"] == 0, "the lag back to 0", 30)


def cli_status(settings: Settings) -> Any:
    env = {
        "CONNECT_URL": settings.connect_url,
        "STREAMS_TOPIC_PREFIX": settings.topic_prefix,
        "STREAMS_SINK_SCHEMA": settings.sink_schema,
        "STREAMS_SINK_VIEWS": "test-view,order-summary",
    }
    return CliRunner().invoke(cli, ["connect", "status"], env=env)


def test_the_deriver_keeps_rows_postgresql_would_refuse_out_of_the_sink(
    settings: Settings, client: CommandClient
) -> None:
    # an event written straight to the log (not through a worker) with an id the column cannot hold
    long_id = "x" * 300
    producer = Producer(kafka_config(settings.bootstrap))
    event = client.runtime.codec.encode(OrderPlaced("c", "EUR"))
    headers = h.event_headers(
        event_type="OrderPlaced", schema_version=1, aggregate_type="Order", aggregate_id=long_id,
        aggregate_version=1, command_id="direct", correlation_id="", occurred_at="2026-12-01T00:00:00Z",
    )  # fmt: skip
    producer.produce(client.runtime.topics.events, event, long_id.encode(), headers=headers)
    assert producer.flush(30) == 0
    assert client.execute("o-after-long", PlaceOrder("c", "EUR")).accepted
    rows = wait_for(
        settings,
        lambda: query(settings, "SELECT count(*) FROM {s}.eventstore WHERE aggregateid = 'o-after-long'")[0][
            0
        ],
        "the next event's row",
    )
    assert rows == 1
    letters = [
        m
        for m in read_topic(settings, client.runtime.topics.dlq, idle_timeout=1.0)
        if h.as_dict(m.headers()).get("dlq_stage") == "sink"
    ]
    # the event, and the order-summary document the read side made of it
    by_source = {h.as_dict(m.headers())[h.DLQ_SOURCE].rsplit("/", 2)[0]: m for m in letters}
    topics = client.runtime.topics
    assert len(letters) == 2 and set(by_source) == {topics.events, topics.view("order-summary")}
    from_log = by_source[topics.events]
    assert from_log.key() == long_id.encode() and from_log.value() == event
    meta = h.as_dict(from_log.headers())
    assert meta[h.DLQ_REASON] == "unsupported_by_sink"
    assert "AggregateID has 300 characters" in meta[h.DLQ_DETAIL]
    document = h.as_dict(by_source[topics.view("order-summary")].headers())
    assert "EntityID has 300 characters" in document[h.DLQ_DETAIL]
    assert all(t["state"] == "RUNNING" for e in status(settings) for t in e.get("tasks", []))
    result = cli_status(settings)
    assert "deriver=2" in result.output, result.output


def test_a_record_the_converter_cannot_read_goes_to_connects_dlq_and_the_task_keeps_running(
    settings: Settings, client: CommandClient
) -> None:
    producer = Producer(kafka_config(settings.bootstrap))
    producer.produce(f"{settings.topic_prefix}orders.snapshots-sink", b"not avro", b"o-bad")
    assert producer.flush(30) == 0
    name = f"{settings.topic_prefix}orders-snapshots-sink"
    counted = wait_for(
        settings,
        lambda: next(e for e in status(settings) if e["name"] == name)["dlq"]["connect"],
        "Connect's DLQ",
    )
    assert counted == 1
    entry = next(e for e in status(settings) if e["name"] == name)
    assert entry["state"] == "RUNNING" and all(t["state"] == "RUNNING" for t in entry["tasks"])
    assert "dlq: connect=1" in cli_status(settings).output


def test_a_failing_task_shows_its_error_in_status(settings: Settings, client: CommandClient) -> None:
    # a row PostgreSQL refuses, written straight to a sink topic (the deriver would have kept it
    # out): the JDBC sink's task fails for good, and status says why
    codec = sink_codec(settings)
    row = SnapshotRow("y" * 300, "Order", "{}", 1, 0)
    producer = Producer(kafka_config(settings.bootstrap))
    producer.produce(f"{settings.topic_prefix}orders.snapshots-sink", codec.encode(row), b"o-refused")
    assert producer.flush(30) == 0
    name = f"{settings.topic_prefix}orders-snapshots-sink"
    wait_until(
        lambda: any(
            t["state"] == "FAILED"
            for t in next(e for e in status(settings) if e["name"] == name).get("tasks", [])
        ),
        "the task failing",
        timeout=60,
    )
    result = cli_status(settings)
    assert result.exit_code == 1, result.output
    assert re.search(rf"{re.escape(name)}: RUNNING .*\n\s+task 0: FAILED", result.output), result.output
    assert "error:" in result.output and "Exception" in result.output
    assert "lag=" in result.output
    ConnectClient(settings.connect_url).delete(name)
