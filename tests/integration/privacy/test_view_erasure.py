"""A forgotten customer leaves the read side: `order-summary` declares the personal fields it
copies (`View.forgetting`), and its projector erases them when `SubjectForgotten` arrives.

Customers A and B place orders with their name and e-mail; A is forgotten. Then the view's
documents, the latest record per key of the compacted view topic and the PostgreSQL rows the JDBC
sink wrote show A's replacement and B intact, none of them holds A's plain text, and a WebSocket
client subscribed to A's document receives the erased document and no personal field.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import aiohttp
import httpx
import psycopg
import pytest

from streams.client import read_topic
from streams.config import Settings
from streams.contexts.orders import context as orders
from streams.kafka.runtime import ContextRuntime
from streams.sinks.connect import deploy, remove, status
from tests.conftest import StackEndpoints
from tests.integration.sinks.kit import query, wait_for
from tests.integration.web.realtime_kit import ws_frames
from tests.integration.workers import Deployment, deployed, wait_until

pytestmark = pytest.mark.integration

TOKEN = "view-erasure-token"
MASTER = base64.b64encode(b"v" * 32).decode()
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    env = {"STREAMS_AUTH_TOKEN": TOKEN, "STREAMS_SECRET": "view-erasure", "STREAMS_MASTER_KEY": MASTER,
           "STREAMS_WINDOWS": "0"}  # fmt: skip
    with deployed(tmp_path_factory.mktemp("view-erasure"), "ve", **env) as dep:
        yield dep


@pytest.fixture(scope="module")
def settings(deployment: Deployment, stack: StackEndpoints) -> Iterator[Settings]:
    """The deployment's sinks on the stack's Connect worker, in a schema of the deployment's own
    (connectors and schema removed after)."""
    s = replace(
        deployment.settings(),
        connect_url=stack.connect_url,
        sink_schema=deployment.prefix,
        connect_secrets=os.environ["STREAMS_CONNECT_SECRETS"],
    )
    try:
        deploy(s)
        wait_for(s, lambda: _running(s), "connectors running", 180)
        yield s
    finally:
        remove(s)
        with psycopg.connect(s.pg_dsn, autocommit=True) as conn:
            conn.execute(f"drop schema if exists {s.sink_schema} cascade".encode())


def _running(settings: Settings) -> bool:
    found = status(settings)
    return bool(found) and all(
        e["state"] == "RUNNING" and all(t["state"] == "RUNNING" for t in e["tasks"]) for e in found
    )


def _summary(dep: Deployment, order: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{dep.url()}/orders/views/order-summary/{order}", headers=AUTH, timeout=30)
    return answer.json()["state"] if answer.status_code == 200 else None


def _rows(settings: Settings, orders_: list[str]) -> dict[str, dict[str, Any]]:
    found = query(
        settings,
        "select EntityID, State from {s}.GenericReadModel where EntityType = 'orders.order-summary' "
        "and EntityID = any(%s)",
        orders_,
    )
    return {entity: state for entity, state in found}


def test_a_forgotten_customer_leaves_the_documents_the_view_topic_the_rows_and_the_feed(
    deployment: Deployment, settings: Settings
) -> None:
    run = uuid.uuid4().hex[:8]
    people = {
        who: {"customer_id": f"cust-{who}-{run}", "customer_name": f"Name{who} {run}",
              "customer_email": f"{who.lower()}-{run}@example.org"}
        for who in "AB"
    }  # fmt: skip
    order = {who: f"o-{who}-{run}" for who in "AB"}
    for who in "AB":
        placed = httpx.post(
            f"{deployment.url()}/orders/commands/PlaceOrder",
            json={"aggregate_id": order[who], "data": people[who]},
            headers=AUTH,
            timeout=60,
        )
        assert placed.status_code == 200, placed.text
    for who in "AB":
        wait_until(
            lambda w=who: (_summary(deployment, order[w]) or {}).get("customer_name"), f"{who}'s document"
        )
    wait_for(settings, lambda: len(_rows(settings, list(order.values()))) == 2, "both rows in PostgreSQL")

    erasure = f"{deployment.url()}/privacy/subjects/{people['A']['customer_id']}"

    async def watch() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{deployment.url()}/realtime/ws?access_token={TOKEN}")
            subscription = {"type": "subscribe", "context": "orders", "events": False,
                            "views": ["order-summary"], "aggregate_id": order["A"]}  # fmt: skip
            await ws.send_json(subscription)
            (subscribed,) = await ws_frames(ws, 1)
            assert subscribed["type"] == "subscribed", subscribed
            forgotten = await asyncio.get_running_loop().run_in_executor(
                None,
                lambda: httpx.delete(erasure, headers=AUTH, timeout=60),
            )
            assert forgotten.status_code == 200, forgotten.text
            frames = await ws_frames(ws, 1, timeout=60)
            await ws.close()
            return frames

    (frame,) = asyncio.run(watch())
    plain_a = [people["A"]["customer_name"], people["A"]["customer_email"]]
    assert frame["type"] == "view" and frame["key"] == order["A"], frame
    assert frame["document"]["state"]["customer_name"] is None, frame
    assert not any(value in json.dumps(frame) for value in plain_a)

    erased = wait_until(
        lambda: (d := _summary(deployment, order["A"])) is not None and d.get("customer_name") is None and d,
        "A's document erased",
    )
    assert erased["customer_email"] is None and erased["customer_id"] == people["A"]["customer_id"]
    assert erased["status"] == "placed"
    kept = _summary(deployment, order["B"])
    assert kept is not None and kept["customer_name"] == people["B"]["customer_name"]

    runtime = ContextRuntime.connect(settings, orders)
    latest: dict[bytes, bytes | None] = {}
    for msg in read_topic(settings, runtime.topics.view_version("order-summary", 1), idle_timeout=2.0):
        latest[msg.key()] = msg.value()
    for who, name in (("A", None), ("B", people["B"]["customer_name"])):
        value = latest[order[who].encode()]
        assert value is not None
        assert json.loads(runtime.codec.decode(value).message.state)["customer_name"] == name
    latest_bytes = b"".join(v or b"" for v in latest.values())
    assert not any(value.encode() in latest_bytes for value in plain_a)
    assert people["B"]["customer_email"].encode() in latest_bytes

    def rows_erased() -> dict[str, dict[str, Any]] | None:
        rows = _rows(settings, list(order.values()))
        return rows if rows.get(order["A"], {}).get("customer_name", "?") is None else None

    rows = wait_for(settings, rows_erased, "A's row erased in PostgreSQL")
    assert rows[order["B"]]["customer_email"] == people["B"]["customer_email"]
    table = query(settings, "select coalesce(string_agg(t::text, ''), '') from {s}.GenericReadModel t")[0][0]
    assert not any(value in table for value in plain_a)
