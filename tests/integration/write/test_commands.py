"""The write side end to end on the real stack: a worker process, Kafka, the registry."""

from __future__ import annotations

import json
import struct
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from streams.client import CommandClient, read_topic
from streams.contexts.orders import AddItem, OrderPlaced, PlaceOrder, RemoveItem, ShipOrder
from streams.kafka.fold import aggregate_from_changelog, aggregate_from_log
from streams.wire import headers as h
from tests.conftest import StackEndpoints
from tests.integration.kafka_config import kafka_config
from tests.integration.workers import Deployment, module_deployment

pytestmark = pytest.mark.integration


deployment = module_deployment("t", STREAMS_SNAPSHOT_EVERY="3", STREAMS_MAX_STATE_BYTES="4000")


def raw_producer(stack: StackEndpoints) -> Producer:
    return Producer(kafka_config(stack.bootstrap))


def events_for(dep: Deployment, client: CommandClient, aggregate_id: str) -> list[Any]:
    return [
        m
        for m in read_topic(dep.settings(), client.runtime.topics.events, idle_timeout=1.0)
        if m.key() == aggregate_id.encode()
    ]


def dlq_records(dep: Deployment, client: CommandClient) -> list[Any]:
    return list(read_topic(dep.settings(), client.runtime.topics.dlq, idle_timeout=1.0))


def test_an_accepted_command_appends_its_events_with_every_header(
    deployment: Deployment, client: CommandClient
) -> None:
    placed = client.execute("o-accept", PlaceOrder("c-1", "EUR"), correlation_id="corr-1", actor="alice")
    assert placed.accepted and placed.aggregate_version == 1
    assert placed.event_types == ("OrderPlaced",)
    added = client.execute("o-accept", AddItem("widget", 2, 250))
    assert added.accepted and added.aggregate_version == 2

    records = events_for(deployment, client, "o-accept")
    assert [h.as_dict(m.headers())[h.AGGREGATE_VERSION] for m in records] == ["1", "2"]
    first = h.as_dict(records[0].headers())
    assert first[h.EVENT_TYPE] == "OrderPlaced" and first[h.SCHEMA_VERSION] == "2"
    assert first[h.AGGREGATE_TYPE] == "Order" and first[h.AGGREGATE_ID] == "o-accept"
    assert first[h.COMMAND_ID] == placed.command_id and first[h.CORRELATION_ID] == "corr-1"
    assert first[h.ACTOR] == "alice" and first[h.OCCURRED_AT].endswith("Z") and first[h.EVENT_ID]
    assert placed.event_offsets == (records[0].offset(),)
    assert client.runtime.codec.decode(records[0].value()).message == OrderPlaced("c-1", "EUR")


def test_a_rule_violation_is_rejected_with_its_reason_and_appends_nothing(
    deployment: Deployment, client: CommandClient
) -> None:
    result = client.execute("o-missing", AddItem("widget", 1, 100))
    assert result.status == "rejected" and result.reason == "order_not_found"
    client.execute("o-reject", PlaceOrder("c-1", "EUR"))
    result = client.execute("o-reject", AddItem("widget", 0, 100))
    assert result.reason == "invalid_quantity" and result.aggregate_version == 1
    assert events_for(deployment, client, "o-missing") == []
    assert len(events_for(deployment, client, "o-reject")) == 1


def test_a_repeated_command_id_returns_the_original_result_and_appends_nothing(
    deployment: Deployment, client: CommandClient
) -> None:
    first = client.execute("o-dup", PlaceOrder("c-1", "EUR"), command_id="cmd-dup-1")
    again = client.execute("o-dup", PlaceOrder("c-1", "EUR"), command_id="cmd-dup-1")
    assert first.accepted and not first.duplicate
    assert again.duplicate and again.accepted and again.aggregate_version == first.aggregate_version
    assert again.event_offsets == first.event_offsets
    assert len(events_for(deployment, client, "o-dup")) == 1


def test_a_command_id_repeated_within_one_batch_is_still_applied_once(
    deployment: Deployment, client: CommandClient
) -> None:
    futures = [
        client.send("o-dup-batch", PlaceOrder("c-1", "EUR"), command_id="cmd-dup-batch")[1] for _ in range(5)
    ]
    client.flush()
    results = [f.result(timeout=60) for f in futures if f is not None]
    # the waiter resolves one future per command id; all five records were handled in order
    assert results[0].accepted and not results[0].duplicate
    assert len(events_for(deployment, client, "o-dup-batch")) == 1
    dup_results = [
        client.runtime.codec.decode(m.value()).message
        for m in read_topic(deployment.settings(), client.runtime.topics.results, idle_timeout=1.0)
        if m.key() == b"cmd-dup-batch"
    ]
    assert [r.duplicate for r in dup_results] == [False, True, True, True, True]


def test_an_unexpected_version_is_a_conflict_naming_the_current_version(client: CommandClient) -> None:
    client.execute("o-conflict", PlaceOrder("c-1", "EUR"))
    stale = client.execute("o-conflict", AddItem("a", 1, 1), expected_version=0)
    assert stale.reason == "version_conflict" and stale.aggregate_version == 1
    fresh = client.execute("o-conflict", AddItem("a", 1, 1), expected_version=1)
    assert fresh.accepted and fresh.aggregate_version == 2


def _register(stack: StackEndpoints, subject: str, schema: dict[str, Any]) -> int:
    registry = SchemaRegistryClient({"url": stack.registry_url, "timeout": 30})
    return int(registry.register_schema(subject, Schema(json.dumps(schema), "AVRO")))


def test_bad_input_goes_to_the_dlq_or_is_rejected_and_the_worker_keeps_going(
    stack: StackEndpoints, deployment: Deployment, client: CommandClient, unique_name: Any
) -> None:
    topic = client.runtime.topics.commands
    producer = raw_producer(stack)
    bad_headers = [(h.COMMAND_ID, b"bad-bytes")]
    # undecodable bytes
    producer.produce(topic, b"not avro at all", b"o-bad", headers=bad_headers)
    # a schema id the registry does not know
    producer.produce(topic, struct.pack(">bI", 0, 987654321) + b"\x00", b"o-bad")
    # a well-formed record of a type no context knows
    stranger = {"type": "record", "name": "Stranger", "namespace": "elsewhere", "fields": []}
    stranger_id = _register(stack, unique_name("stranger"), stranger)
    producer.produce(topic, struct.pack(">bI", 0, stranger_id), b"o-bad")
    # AddItem with the wrong field types: Avro cannot resolve it and no upcaster covers it
    wrong = {
        "type": "record",
        "name": "AddItem",
        "namespace": "orders",
        "fields": [{"name": "sku", "type": "long"}],
    }
    wrong_id = _register(stack, unique_name("wrong-types"), wrong)
    producer.produce(topic, struct.pack(">bI", 0, wrong_id) + b"\x02", b"o-bad")
    # no aggregate id
    producer.produce(topic, client.runtime.codec.encode(PlaceOrder("c", "EUR")), None)
    # oversized
    producer.produce(topic, b"\x00" * (300 * 1024), b"o-bad")
    producer.flush(10)

    # an event where a command belongs: decodes, so it gets a rejected result
    wrong_kind = client.execute("o-bad", OrderPlaced("c", "EUR"))  # type: ignore[arg-type]
    assert wrong_kind.reason == "unknown_command_type"
    # and the worker still accepts good commands
    assert client.execute("o-after-bad", PlaceOrder("c-1", "EUR")).accepted

    reasons = sorted(h.as_dict(m.headers())[h.DLQ_REASON] for m in dlq_records(deployment, client))
    assert reasons == sorted(
        [
            "malformed_record",
            "unknown_schema",
            "unknown_type",
            "no_upcaster_path",
            "missing_aggregate_id",
            "oversized_record",
        ]
    )
    by_reason = {h.as_dict(m.headers())[h.DLQ_REASON]: m for m in dlq_records(deployment, client)}
    oversized = by_reason["oversized_record"]
    assert len(oversized.value()) == 300 * 1024, "the original bytes are kept"
    assert h.as_dict(oversized.headers())[h.DLQ_SOURCE].startswith(topic)


def test_the_table_state_equals_the_fold_of_the_log(deployment: Deployment, client: CommandClient) -> None:
    client.execute("o-fold", PlaceOrder("c-9", "USD"))
    client.execute("o-fold", AddItem("a", 2, 100))
    client.execute("o-fold", AddItem("b", 1, 50))
    folded = aggregate_from_log(deployment.settings(), client.runtime, "o-fold")
    table = aggregate_from_changelog(deployment.settings(), client.runtime, "o-fold")
    assert folded == table
    assert folded.version == 3 and folded.state.total_cents == 250


def _post(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_http_command_api(deployment: Deployment, client: CommandClient) -> None:
    base = f"http://127.0.0.1:{deployment.ports['w1']}/orders/commands"
    status, body = _post(f"{base}/PlaceOrder", {"aggregate_id": "o-http", "data": {"customer_id": "c"}})
    assert status == 200 and body["status"] == "accepted" and body["aggregate_version"] == 1
    status, body = _post(
        f"{base}/AddItem",
        {"aggregate_id": "o-http", "data": {"sku": "x", "quantity": 0, "unit_price_cents": 1}},
    )
    assert status == 422 and body["reason"] == "invalid_quantity"
    status, body = _post(
        f"{base}/ConfirmOrder", {"aggregate_id": "o-http", "data": {}, "expected_version": 7}
    )
    assert status == 409 and body["reason"] == "version_conflict" and body["aggregate_version"] == 1
    status, body = _post(f"{base}/AddItem", b"{not json")
    assert status == 400 and "JSON" in body["error"]
    status, body = _post(f"{base}/AddItem", {"aggregate_id": "o-http", "data": {"sku": "x"}})
    assert status == 400 and "missing" in body["error"]
    status, body = _post(
        f"{base}/AddItem",
        {"aggregate_id": "o-http", "data": {"sku": 1, "quantity": "a", "unit_price_cents": 1}},
    )
    assert status == 400
    status, body = _post(f"{base}/Teleport", {"aggregate_id": "o-http", "data": {}})
    assert status == 400 and "unknown command type" in body["error"]
    status, body = _post(f"{base}/ShipOrder?wait=false", {"aggregate_id": "o-http", "data": {"carrier": "x"}})
    assert status == 202 and body["command_id"]
    with urllib.request.urlopen(f"http://127.0.0.1:{deployment.ports['w1']}/metrics") as response:
        text = response.read().decode()
    assert (
        'streams_commands_total{command_type="PlaceOrder",context="orders",reason="",status="accepted"}'
        in text
    )
    assert "streams_dlq_records_total" in text and "streams_command_latency_seconds_bucket" in text


def test_every_third_version_is_snapshotted_in_the_same_transaction(
    deployment: Deployment, client: CommandClient
) -> None:
    client.execute("o-snap", PlaceOrder("c-1", "EUR"))
    for i in range(6):
        client.execute("o-snap", AddItem(f"sku-{i}", 1, 10))
    snapshots = [
        client.runtime.codec.decode(m.value()).message
        for m in read_topic(deployment.settings(), client.runtime.topics.snapshots, idle_timeout=1.0)
        if m.key() == b"o-snap"
    ]
    assert [s.version for s in snapshots] == [3, 6]
    events = events_for(deployment, client, "o-snap")
    latest = snapshots[-1]
    assert latest.event_offset == events[5].offset() and latest.event_partition == events[5].partition()
    history = [client.runtime.codec.decode(m.value()).message for m in events]
    state = client.runtime.codec.decode(latest.state).message
    assert state == client.runtime.context.fold(history[:6])
    # snapshot + tail = full fold
    assert client.runtime.context.fold(history[6:], state) == client.runtime.context.fold(history)


def test_a_state_that_would_outgrow_its_changelog_record_is_rejected_not_stuck(
    deployment: Deployment, client: CommandClient
) -> None:
    client.execute("o-big", PlaceOrder("c-1", "EUR"))
    # skus at their 255-character limit: 4,000 bytes of state hold 14 of them
    results = [client.execute("o-big", AddItem(f"{i:02d}" + "x" * 253, 1, 1)) for i in range(16)]
    accepted = [r.status for r in results].index("rejected")
    assert [r.status for r in results[:accepted]] == ["accepted"] * accepted and accepted >= 10
    assert results[accepted].reason == "aggregate_too_large" and "limit 4000" in results[accepted].detail
    assert results[accepted].aggregate_version == accepted + 1
    # the partition keeps going: other aggregates and smaller changes are fine
    assert client.execute("o-big", RemoveItem("00" + "x" * 253)).accepted
    assert client.execute("o-big-other", PlaceOrder("c-2", "EUR")).accepted


def test_ship_requires_confirmation_end_to_end(client: CommandClient) -> None:
    client.execute("o-ship", PlaceOrder("c-1", "EUR"))
    assert client.execute("o-ship", ShipOrder("DHL")).reason == "order_not_confirmed"


def test_worker_log_has_no_tracebacks(deployment: Deployment) -> None:
    log = Path(deployment.data_dir / "w1.log").read_text(errors="replace")
    assert "Traceback" not in log, deployment.log_tail("w1", 80)


def test_results_point_at_their_events_even_when_another_writer_shifts_the_offsets(
    deployment: Deployment, client: CommandClient, stack: StackEndpoints
) -> None:
    """Results carry their events' offsets, predicted before the broker acknowledges them. A
    record from another producer moves every partition's end; the next batch's prediction is
    then wrong, caught before the commit, and the batch is retried with the real offsets."""

    def burst(tag: str) -> list[Any]:
        futures = []
        for i in range(200):
            command = PlaceOrder("c", "EUR") if i < 20 else AddItem(f"sku-{i % 7}", 1, 100 + i % 7)
            _, future = client.send(f"o-offsets-{tag}-{i % 20}", command)
            futures.append(future)
        client.flush()
        return [f.result(timeout=60) for f in futures]

    before = metric(deployment, "streams_transaction_retries_total", 'cause="OffsetsMispredicted"')
    results = burst("a")
    foreign = raw_producer(stack)
    events_topic = client.runtime.topics.events
    for partition in range(deployment.settings().partitions):
        foreign.produce(events_topic, b"not ours", b"foreign", partition=partition)
    assert foreign.flush(10) == 0
    results += burst("b")

    assert all(r.accepted and len(r.event_offsets) == 1 for r in results)
    by_place = {
        (m.partition(), m.offset()): h.as_dict(m.headers()).get(h.COMMAND_ID)
        for m in read_topic(deployment.settings(), events_topic, idle_timeout=1.0)
    }
    wrong = [r for r in results if by_place.get((r.event_partition, r.event_offsets[0])) != r.command_id]
    assert wrong == [], f"{len(wrong)} of {len(results)} results point at another record"
    assert metric(deployment, "streams_transaction_retries_total", 'cause="OffsetsMispredicted"') > before


def metric(dep: Deployment, name: str, label: str) -> float:
    """Sum of a worker's metric samples that carry `label` (e.g. 'cause="X"')."""
    with urllib.request.urlopen(f"{dep.url()}/metrics", timeout=5) as r:
        lines = r.read().decode().splitlines()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(name + "{") and label in line
    )
