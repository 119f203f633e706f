"""Event versioning on the real stack: a worker reads old command versions, views and aggregates
fold a log that mixes v1 and v2 events, versions without an upcaster path go to the DLQs, and the
registry's compatibility rules gate new schema versions.

Old-version records are encoded with the v1 schemas, which the codec registered under the
subjects at start-up (every version of every type is registered).
"""

from __future__ import annotations

import json
import struct
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from streams.client import CommandClient, read_topic
from streams.contexts.orders import AddItem, OrderLine, PlaceOrder
from streams.kafka.fold import aggregate_from_log
from streams.wire import headers as h
from streams.wire.codec import AvroCodec, IncompatibleSchema, NoUpcasterPath
from streams.wire.governance import Subject, check, register
from streams.wire.schemas import SchemaCatalog, SchemaVersion, load_schema_file
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment, deployed, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployed(tmp_path_factory.mktemp("worker"), "v", STREAMS_SINKS="0") as dep:
        yield dep


def view(dep: Deployment, name: str, entity: str, **query: Any) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{dep.ports['w1']}/orders/views/{name}/{entity}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def send_raw(stack: StackEndpoints, topic: str, key: str, value: bytes, headers: list[Any]) -> None:
    producer = Producer({"bootstrap.servers": stack.bootstrap})
    producer.produce(topic, value, key.encode(), headers=headers)
    producer.flush(10)


def old_event(
    client: CommandClient, aggregate: str, version: int, type_name: str, record: dict[str, Any]
) -> Any:
    """An event as a v1-era worker wrote it: v1 bytes, v1 in the schema_version header."""
    headers = h.event_headers(
        event_type=type_name,
        schema_version=1,
        aggregate_type="Order",
        aggregate_id=aggregate,
        aggregate_version=version,
        command_id=f"legacy-{aggregate}-{version}",
        correlation_id="",
        occurred_at="2025-06-01T00:00:00Z",
    )
    return client.runtime.codec.encode_record(type_name, 1, record), headers


def test_a_producer_on_old_command_versions_keeps_working(
    stack: StackEndpoints, deployment: Deployment, client: CommandClient
) -> None:
    assert client.execute("o-v1cmd", PlaceOrder("c-v1", "EUR")).accepted
    codec = client.runtime.codec
    for cid, type_name, record in [
        ("v1-add", "AddItem", {"sku": "w", "quantity": 2, "unit_price_cents": 250}),  # AddItem v1
        ("v1-confirm", "ConfirmOrder", {}),
        ("v1-ship", "ShipOrder", {"carrier": "DHL"}),  # ShipOrder v1: no tracking_id
    ]:
        future = client._waiter.expect(cid) if client._waiter else None
        assert future is not None
        send_raw(
            stack,
            client.runtime.topics.commands,
            "o-v1cmd",
            codec.encode_record(type_name, 1, record),
            [(h.COMMAND_ID, cid.encode())],
        )
        result = future.result(60)
        assert result.accepted, (type_name, result)
    folded = aggregate_from_log(deployment.settings(), client.runtime, "o-v1cmd")
    assert folded.version == 4 and folded.state.status == "shipped"
    assert folded.state.lines == (OrderLine("w", 2, 250),)
    added = [
        m
        for m in read_topic(deployment.settings(), client.runtime.topics.events, idle_timeout=1.0)
        if m.key() == b"o-v1cmd" and h.as_dict(m.headers())[h.EVENT_TYPE] == "ItemAdded"
    ]
    assert [h.as_dict(m.headers())[h.SCHEMA_VERSION] for m in added] == ["2"]  # written with the latest


def test_views_and_aggregates_fold_a_log_mixing_v1_and_v2_events(
    stack: StackEndpoints, deployment: Deployment, client: CommandClient
) -> None:
    customer = f"mixed-{uuid.uuid4().hex[:6]}"
    # a v1-era order in the log, untouched: OrderPlaced v1, ItemAdded v1 x2, OrderShipped v1 later
    legacy = [
        ("OrderPlaced", {"customer_id": customer, "currency": "EUR"}),
        ("ItemAdded", {"sku": "a", "quantity": 2, "unit_price_cents": 150}),
        ("ItemAdded", {"sku": "a", "quantity": 1, "unit_price_cents": 150}),
        ("ItemAdded", {"sku": "b", "quantity": 1, "unit_price_cents": 99}),
    ]
    for version, (type_name, record) in enumerate(legacy, start=1):
        value, headers = old_event(client, "o-legacy", version, type_name, record)
        send_raw(stack, client.runtime.topics.events, "o-legacy", value, headers)
    # a new order of the same customer, written by the new worker (ItemAdded v2)
    assert client.execute("o-new", PlaceOrder(customer, "EUR")).accepted
    last = client.execute("o-new", AddItem("c", 3, 10, currency="EUR"))
    assert last.accepted

    status, body = view(deployment, "order-summary", "o-legacy", min_version=4, timeout=30)
    assert status == 200, body
    summary = body["state"]
    assert summary["items"] == [
        {"sku": "a", "quantity": 3, "unit_price_cents": 150},
        {"sku": "b", "quantity": 1, "unit_price_cents": 99},
    ]
    assert summary["total_cents"] == 549 and summary["customer_id"] == customer

    def by_customer() -> Any:
        status, body = view(deployment, "orders-by-customer", customer, timeout=30)
        return body.get("state") if status == 200 else None

    def settled() -> Any:  # both orders folded up to their last event
        state = by_customer()
        orders = state["orders"] if state else {}
        return (
            state if set(orders) == {"o-legacy", "o-new"} and orders["o-new"]["total_cents"] == 30 else None
        )

    state = wait_until(settled, "both orders folded into orders-by-customer", 60, every=0.3)
    assert state["orders"]["o-legacy"]["total_cents"] == 549
    assert state["orders"]["o-new"]["total_cents"] == 30 and state["total_cents"] == 579

    folded = aggregate_from_log(deployment.settings(), client.runtime, "o-legacy")
    assert folded.version == 4 and folded.state.total_cents == 549
    assert folded.state.lines == (OrderLine("a", 3, 150), OrderLine("b", 1, 99))


def test_a_version_without_upcaster_path_goes_to_the_dlqs(
    stack: StackEndpoints, deployment: Deployment, client: CommandClient
) -> None:
    registry = SchemaRegistryClient({"url": stack.registry_url, "timeout": 30})
    rogue = {  # an ItemAdded "version" nobody wrote a schema file or upcaster for
        "type": "record",
        "name": "ItemAdded",
        "namespace": "orders",
        "fields": [{"name": "sku", "type": "string"}, {"name": "price", "type": "string"}],
    }
    rogue_id = registry.register_schema(f"rogue-{uuid.uuid4().hex[:8]}", Schema(json.dumps(rogue), "AVRO"))
    body = struct.pack(">bI", 0, rogue_id) + b"\x02x\x04$1"
    with pytest.raises(NoUpcasterPath):
        client.runtime.codec.decode(body)
    # on the write side (an event type where a command belongs still decodes first)
    send_raw(stack, client.runtime.topics.commands, "o-rogue", body, [(h.COMMAND_ID, b"rogue-cmd")])
    # on the read side: the event in the log
    value, headers = old_event(client, "o-rogue", 1, "OrderPlaced", {"customer_id": "c", "currency": "EUR"})
    send_raw(stack, client.runtime.topics.events, "o-rogue", value, headers)
    rogue_headers = [(k, v) for k, v in headers if k != h.AGGREGATE_VERSION] + [(h.AGGREGATE_VERSION, b"2")]
    send_raw(stack, client.runtime.topics.events, "o-rogue", body, rogue_headers)
    assert client.execute("o-after-rogue", PlaceOrder("c", "EUR")).accepted  # the worker goes on

    dlq = [
        h.as_dict(m.headers())
        for m in read_topic(deployment.settings(), client.runtime.topics.dlq, idle_timeout=2.0)
        if m.key() == b"o-rogue"
    ]
    assert [d[h.DLQ_REASON] for d in dlq] == ["no_upcaster_path"]
    assert "no upcaster" in dlq[0][h.DLQ_DETAIL]

    def view_letters() -> list[dict[str, str]]:
        return [
            h.as_dict(m.headers())
            for m in read_topic(
                deployment.settings(), client.runtime.topics.view_dlq("order-summary"), idle_timeout=1.0
            )
            if m.key() == b"o-rogue"
        ]

    view_dlq = wait_until(view_letters, "the view dead-letters the event it cannot read", 60, every=0.5)
    # the projector names the exception class (projector.py); the detail carries the codec's reason
    assert view_dlq[0][h.DLQ_REASON] == "no_upcaster_path"
    assert "no upcaster" in view_dlq[0][h.DLQ_DETAIL]
    status, body = view(deployment, "order-summary", "o-rogue", min_version=1, timeout=30)
    assert status == 200 and body["state"]["items"] == [], "not half-applied"


# --- the registry gate on a private subject ------------------------------------------------------


def _version(tmp: Path, namespace: str, version: int, fields: list[dict[str, Any]]) -> SchemaVersion:
    path = tmp / f"Parcel.v{version}.avsc"
    path.write_text(
        json.dumps({"type": "record", "name": "Parcel", "namespace": namespace, "fields": fields})
    )
    return load_schema_file(path)


def test_the_registry_gates_new_versions_by_the_subject_level(stack: StackEndpoints, tmp_path: Path) -> None:
    registry = SchemaRegistryClient({"url": stack.registry_url, "timeout": 30})
    ns = f"vt{uuid.uuid4().hex[:8]}"
    v1 = _version(tmp_path, ns, 1, [{"name": "weight_g", "type": "long"}])
    v2 = _version(
        tmp_path,
        ns,
        2,
        [{"name": "weight_g", "type": "long"}, {"name": "note", "type": "string", "default": ""}],
    )
    v3 = _version(tmp_path, ns, 3, [{"name": "weight_kg", "type": "double"}])  # incompatible, no upcaster
    subject = Subject("Parcel", [v1, v2], "BACKWARD_TRANSITIVE", [])
    assert any("v2" in line for line in register(registry, subject))
    assert registry.get_compatibility(subject.name) == "BACKWARD_TRANSITIVE"

    errors, _ = check(registry, Subject("Parcel", [v1, v2, v3], "BACKWARD_TRANSITIVE", []))
    text = "\n".join(errors)
    assert "v3 cannot read data written with v1" in text and "+ weight_kg" in text, text
    assert "the registry (BACKWARD_TRANSITIVE) refuses it" in text, text

    # a worker with the incompatible file refuses to start rather than write it
    @dataclass(frozen=True)
    class Parcel:
        weight_kg: float

    with pytest.raises(IncompatibleSchema, match="refused by the registry"):
        AvroCodec.connect(SchemaCatalog([tmp_path], (Parcel,)), stack.registry_url)

    # with an upcaster v2 -> v3 the subject is set to NONE and the level is enforced within epochs
    upcast = Subject("Parcel", [v1, v2, v3], "BACKWARD_TRANSITIVE", [2])
    errors, notes = check(registry, upcast)
    assert errors == [] and any("upcasters v2->v3" in n for n in notes)
    register(registry, upcast)
    assert registry.get_compatibility(subject.name) == "NONE"
