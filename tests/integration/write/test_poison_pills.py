"""No single record can halt the write side: on the real stack, with worker processes.

A megabyte identifier, a NUL in an id or an overlong command id, sent by HTTP or by a raw
producer, ends in the DLQ (or a 400) while every partition keeps answering; a record the broker
itself refuses is found inside its batch, dead-lettered, and the rest of the batch commits
exactly once.
"""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from streams.client import CommandClient, read_topic
from streams.contexts.orders import AddItem, PlaceOrder
from streams.kafka.clients import admin
from streams.read.rebuild import verify
from streams.wire import headers as h
from streams.wire.topics import ContextTopics, partition_for
from tests.conftest import StackEndpoints
from tests.integration.kafka_config import kafka_config
from tests.integration.workers import Deployment, deployed, wait_until, warmed_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployed(tmp_path_factory.mktemp("worker"), "pp", STREAMS_SINKS="0", STREAMS_READ_SIDE="0") as dep:
        yield dep


def post(dep: Deployment, body: Any, content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(f"{dep.url()}/orders/commands/PlaceOrder", data=data, method="POST")
    request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def dlq(dep: Deployment, client: CommandClient) -> list[Any]:
    return list(read_topic(dep.settings(), client.runtime.topics.dlq, idle_timeout=1.0))


def uncompressible(chars: int) -> str:
    return base64.urlsafe_b64encode(os.urandom(chars * 3 // 4 + 3)).decode()[:chars]


def answers_on_every_partition(client: CommandClient, partitions: int, within_s: float) -> list[float]:
    """Time one new command on each partition."""
    times = []
    for partition in range(partitions):
        order = f"alive-{uuid.uuid4().hex[:6]}"
        while partition_for(order.encode(), partitions) != partition:
            order = f"alive-{uuid.uuid4().hex[:6]}"
        started = time.perf_counter()
        assert client.execute(order, PlaceOrder("c", "EUR"), timeout=within_s * 10).accepted
        times.append(time.perf_counter() - started)
    return times


def test_a_megabyte_id_is_refused_by_http_and_dead_lettered_from_kafka(
    deployment: Deployment, client: CommandClient, stack: StackEndpoints
) -> None:
    huge = uncompressible(600_000)
    status, body = post(deployment, {"aggregate_id": huge, "data": {"customer_id": "c"}})
    assert status == 400 and body["reason"] == "invalid_identifier" and body["field"] == "aggregate_id"

    raw = Producer({**kafka_config(stack.bootstrap), "message.max.bytes": 4_000_000})
    topic = client.runtime.topics.commands
    value = client.runtime.codec.encode(PlaceOrder("c", "EUR"))
    waiting = client._waiter.expect("huge-key") if client._waiter else None
    raw.produce(topic, value, huge.encode(), headers=[(h.COMMAND_ID, b"huge-key")])
    raw.produce(topic, value, b"nul\x00id", headers=[(h.COMMAND_ID, b"nul-key")])
    raw.produce(topic, value, b"o-fine", headers=[(h.COMMAND_ID, ("c" * 300).encode())])
    raw.produce(topic, value, b"o-fine-2", headers=[(h.COMMAND_ID, b"ok"), (h.ACTOR, b"tab\there")])
    assert raw.flush(30) == 0

    assert waiting is not None
    result = waiting.result(timeout=60)
    assert (result.status, result.reason) == ("rejected", "invalid_identifier")
    assert len(result.aggregate_id) < 100  # shortened: the result must fit its topic
    times = answers_on_every_partition(client, deployment.partitions, within_s=1.0)
    assert max(times) < 1.0, times

    reasons = Counter(h.as_dict(m.headers())[h.DLQ_REASON] for m in dlq(deployment, client))
    assert reasons["invalid_identifier"] == 4, reasons
    kept = {m.key(): m for m in dlq(deployment, client)}
    assert kept[huge.encode()].value() == value  # the original bytes, whole
    details = [h.as_dict(m.headers())[h.DLQ_DETAIL] for m in dlq(deployment, client)]
    assert any("aggregate_id has 600000 characters" in d for d in details)
    assert any("U+0000" in d for d in details) and any("command_id has 300" in d for d in details)
    assert any("actor contains the control character U+0009" in d for d in details)


def test_a_nul_or_a_text_plain_body_is_refused_by_http(deployment: Deployment) -> None:
    status, body = post(deployment, {"aggregate_id": "o\x00x", "data": {"customer_id": "c"}})
    assert status == 400 and body["reason"] == "invalid_identifier"
    status, body = post(deployment, {"aggregate_id": "o-1", "data": {"customer_id": "c" * 256}})
    assert status == 400 and body["reason"] == "invalid_field" and body["field"] == "data.customer_id"
    status, body = post(deployment, {"aggregate_id": "o-csrf", "data": {"customer_id": "c"}}, "text/plain")
    assert status == 415 and body["reason"] == "unsupported_media_type"


def test_a_string_over_its_schema_limit_is_dead_lettered_when_produced_directly(
    deployment: Deployment, client: CommandClient, stack: StackEndpoints
) -> None:
    raw = Producer(kafka_config(stack.bootstrap))
    codec = client.runtime.codec
    record = codec.encode_record(
        "AddItem", 3, {"sku": "s" * 300, "quantity": 1, "unit_price_cents": 1, "currency": None}
    )
    raw.produce(client.runtime.topics.commands, record, b"o-long-sku", headers=[(h.COMMAND_ID, b"long-sku")])
    assert raw.flush(30) == 0
    found: list[Any] = wait_until(
        lambda: [
            m for m in dlq(deployment, client) if h.as_dict(m.headers()).get(h.COMMAND_ID) == "long-sku"
        ],
        "the long sku dead-lettered",
        60,
        every=0,
    )
    assert h.as_dict(found[0].headers())[h.DLQ_REASON] == "invalid_field"
    assert "sku has 300 characters; at most 255" in h.as_dict(found[0].headers())[h.DLQ_DETAIL]


def test_a_record_the_broker_refuses_is_dead_lettered_and_the_rest_of_its_batch_commits_once(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    # The changelog topic's limit is lowered under the running worker (20,000 bytes; a topic that
    # differs at start is refused by the worker's topic check): the worker's own checks pass an
    # order's growing state, the broker refuses it.
    dep = Deployment(prefix=f"pb{uuid.uuid4().hex[:8]}", data_dir=tmp_path, extra_env={"STREAMS_SINKS": "0"})
    settings = dep.settings()
    topics = ContextTopics("orders", settings.topic_prefix)
    dep.start("w1")
    try:
        dep.wait_healthy("w1")
        smaller = ConfigEntry("max.message.bytes", "20000", incremental_operation=AlterConfigOpType.SET)
        lowered = ConfigResource(ResourceType.TOPIC, topics.changelog, incremental_configs=[smaller])
        kafka_admin = admin(settings)  # held: a destroyed client fails its futures
        kafka_admin.incremental_alter_configs([lowered])[lowered].result(30)
        with warmed_client(settings) as client:
            others = [f"o-{i}" for i in range(20)]
            futures: list[tuple[str, Any]] = []
            for order in ["big", *others]:
                futures.append((order, client.send(order, PlaceOrder("c", "EUR"))[1]))
            for i in range(100):  # 100 lines of 255-character skus that lz4 cannot shrink: ~27 kB
                futures.append(
                    ("big", client.send("big", AddItem(f"{i:03d}" + uncompressible(252), 1, 1))[1])
                )
                other = others[i % len(others)]
                futures.append((other, client.send(other, AddItem(f"sku-{i}", 1, 1))[1]))
            client.flush()
            results = [(order, future.result(timeout=300)) for order, future in futures]
            big = [r for order, r in results if order == "big"]
            accepted = sum(r.accepted for r in big)
            refused = [r for r in big if not r.accepted]
            assert 50 < accepted < 100, accepted
            assert {r.reason for r in refused} == {"output_rejected"}, {r.reason for r in refused}
            assert all(r.accepted for order, r in results if order != "big")
            events = list(read_topic(settings, client.runtime.topics.events, idle_timeout=2.0))
            per_command = Counter(h.as_dict(m.headers())[h.COMMAND_ID] for m in events)
            assert set(per_command.values()) == {1}  # exactly once, nothing of the refused ones
            assert len(events) == 1 + len(others) + accepted + 100
            checked, mismatches = verify(settings, client.runtime)
            assert checked >= 21 and mismatches == []
            letters = [
                m for m in dlq(dep, client) if h.as_dict(m.headers())[h.DLQ_REASON] == "output_rejected"
            ]
            assert len(letters) == len(refused)
            assert "Message size too large" in h.as_dict(letters[0].headers())[h.DLQ_DETAIL]
            metrics = urllib.request.urlopen(f"{dep.url()}/metrics", timeout=10).read().decode()
            assert 'cause="bisect"' in metrics
    finally:
        dep.stop_all()
