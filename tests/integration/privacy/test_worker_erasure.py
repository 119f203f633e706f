"""A customer forgotten on a running worker: personal data sealed in every topic, the erasure
over HTTP behind the bearer token, the key row gone, the log read back with the replacement, a
tampered ciphertext dead-lettered with its reason."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import psycopg
import pytest
from confluent_kafka import Producer

from streams.client import read_topic
from streams.contexts.orders import OrderPlaced
from streams.contexts.orders import context as orders
from streams.kafka.runtime import ContextRuntime
from streams.privacy.deployment import keyring_for
from streams.privacy.postgres import TABLE
from streams.wire import headers as h
from streams.wire.topics import privacy_topic
from tests.conftest import StackEndpoints
from tests.integration.web.realtime_kit import ws_frames
from tests.integration.workers import Deployment, deployed, wait_until

pytestmark = pytest.mark.integration

TOKEN = "privacy-token"
MASTER = base64.b64encode(b"k" * 32).decode()


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    env = {
        "STREAMS_AUTH_TOKEN": TOKEN, "STREAMS_SECRET": "privacy-secret", "STREAMS_MASTER_KEY": MASTER,
        "STREAMS_SINKS": "0", "STREAMS_WINDOWS": "0",
    }  # fmt: skip
    with deployed(tmp_path_factory.mktemp("privacy"), "p", **env) as dep:
        yield dep


def _place(dep: Deployment, order: str, data: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{dep.url()}/orders/commands/PlaceOrder",
        json={"aggregate_id": order, "data": data},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )


def test_a_forgotten_customer_reads_as_erased_and_no_topic_holds_their_data(
    deployment: Deployment, stack: StackEndpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = uuid.uuid4().hex[:8]
    a = {
        "customer_id": f"cust-A-{run}",
        "customer_name": f"Ada {run}",
        "customer_email": f"ada-{run}@example.org",
    }
    b = {
        "customer_id": f"cust-B-{run}",
        "customer_name": f"Bob {run}",
        "customer_email": f"bob-{run}@example.org",
    }
    assert _place(deployment, f"o-A-{run}", a).status_code == 200
    assert _place(deployment, f"o-B-{run}", b).status_code == 200

    settings = deployment.settings()
    monkeypatch.setenv("STREAMS_MASTER_KEY", MASTER)
    runtime = ContextRuntime.connect(settings, orders)
    topics = [
        runtime.topics.commands,
        runtime.topics.events,
        runtime.topics.results,
        runtime.topics.changelog,
    ]
    raw = b"".join(
        (m.value() or b"") + b"".join(v or b"" for _, v in m.headers() or [])
        for topic in topics
        for m in read_topic(settings, topic, idle_timeout=2.0)
    )
    for person in (a, b):
        assert person["customer_name"].encode() not in raw and person["customer_email"].encode() not in raw

    denied = httpx.delete(f"{deployment.url()}/privacy/subjects/{a['customer_id']}", timeout=30)
    assert denied.status_code == 401
    answer = httpx.delete(
        f"{deployment.url()}/privacy/subjects/{a['customer_id']}",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=60,
    )
    assert answer.status_code == 200 and answer.json()["key_deleted"] is True, answer.text
    with psycopg.connect(stack.pg_dsn, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT subject FROM {TABLE} WHERE subject = ANY(%s)", ([a["customer_id"], b["customer_id"]],)
        ).fetchall()
    assert rows == [(b["customer_id"],)]
    audit = list(read_topic(settings, privacy_topic(settings.topic_prefix), idle_timeout=2.0))
    assert [m.key() for m in audit] == [a["customer_id"].encode()]

    keyring_for(settings.pg_dsn).evict(a["customer_id"])
    placed = {
        m.key(): runtime.codec.decode(m.value()).message
        for m in read_topic(settings, runtime.topics.events, idle_timeout=2.0)
        if h.as_dict(m.headers())[h.EVENT_TYPE] == "OrderPlaced"
    }
    assert placed[f"o-A-{run}".encode()] == OrderPlaced(a["customer_id"], "EUR", None, None)
    assert placed[f"o-B-{run}".encode()] == OrderPlaced(
        b["customer_id"], "EUR", b["customer_name"], b["customer_email"]
    )

    commands = [
        m
        for m in read_topic(settings, runtime.topics.commands, idle_timeout=2.0)
        if m.key() == f"o-B-{run}".encode()
    ]
    tampered = bytearray(commands[0].value() or b"")
    tampered[-1] ^= 0x01
    producer = Producer({"bootstrap.servers": stack.bootstrap})
    producer.produce(
        runtime.topics.commands,
        bytes(tampered),
        f"o-C-{run}".encode(),
        headers=[(h.COMMAND_ID, f"t-{run}".encode())],
    )
    assert producer.flush(30) == 0

    def dead_lettered() -> list[Any]:
        found = list(read_topic(settings, runtime.topics.dlq, idle_timeout=1.0))
        return [m for m in found if m.key() == f"o-C-{run}".encode()]

    (letter,) = wait_until(dead_lettered, "the tampered command in the DLQ", 60)
    assert h.as_dict(letter.headers())[h.DLQ_REASON] == "tampered_ciphertext"
    assert _place(deployment, f"o-D-{run}", {"customer_id": "c-after"}).status_code == 200  # still serving

    with psycopg.connect(stack.pg_dsn, autocommit=True) as conn:
        conn.execute(f"DELETE FROM {TABLE} WHERE subject = ANY(%s)", ([b["customer_id"]],))


def test_a_websocket_client_never_receives_a_personal_field(deployment: Deployment) -> None:
    run = uuid.uuid4().hex[:8]
    order, name = f"o-W-{run}", f"Wanda {run}"

    async def watch() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{deployment.url()}/realtime/ws?access_token={TOKEN}")
            await ws.send_json({"type": "subscribe", "context": "orders", "aggregate_id": order})
            (subscribed,) = await ws_frames(ws, 1)
            assert subscribed["type"] == "subscribed", subscribed
            data = {
                "customer_id": f"cust-W-{run}",
                "customer_name": name,
                "customer_email": f"w-{run}@example.org",
            }
            sent = await asyncio.get_running_loop().run_in_executor(None, _place, deployment, order, data)
            assert sent.status_code == 200, sent.text
            frames = await ws_frames(ws, 1)
            await ws.close()
            return frames

    (frame,) = asyncio.run(watch())
    assert frame["type"] == "event" and frame["event_type"] == "OrderPlaced"
    assert frame["data"]["customer_name"] is None and frame["data"]["customer_email"] is None
    assert name not in json.dumps(frame)
