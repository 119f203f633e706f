"""Byte budgets on a live worker: a real-time frame over the cap arrives as a `changed` frame
that says where to fetch the document, and a list page over its byte budget ends early with a
cursor, without losing a document.

The worker runs the test-only view `ledger` (tests/integration/heavy_orders.py), whose document
grows by about 2 KB per event, with a frame cap of 20 KB and a page budget of 50 KB.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import httpx
import pytest

from streams.client import CommandClient
from streams.contexts.orders import AddItem, PlaceOrder
from tests.integration.workers import Deployment, module_deployment, wait_until

pytestmark = pytest.mark.integration

FRAME_BYTES = 20_000
PAGE_BYTES = 50_000


deployment = module_deployment(
    "bb",
    STREAMS_CONTEXT_MODULES="tests.integration.heavy_orders",
    STREAMS_SINKS="0",
    STREAMS_REALTIME_FRAME_BYTES=str(FRAME_BYTES),
    STREAMS_READ_PAGE_BYTES=str(PAGE_BYTES),
)


def grow(client: CommandClient, order: str, events: int) -> None:
    """Place `order` and add items until it has `events` events."""
    assert client.execute(order, PlaceOrder("c", "EUR")).accepted
    futures = [client.send(order, AddItem(f"sku-{i % 5}", 1, 100))[1] for i in range(events - 1)]
    client.flush()
    assert all(f is not None and f.result(timeout=60).accepted for f in futures)


def test_a_document_frame_over_the_cap_arrives_as_changed_with_where_to_fetch_it(
    deployment: Deployment, client: CommandClient
) -> None:
    url = deployment.url()
    order = "frames-1"

    async def scenario() -> list[dict[str, Any]]:
        frames: list[dict[str, Any]] = []
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"{url}/realtime/ws")
            subscription = {
                "type": "subscribe", "context": "orders", "events": False, "views": ["ledger"],
                "aggregate_id": order,
            }  # fmt: skip
            await ws.send_json(subscription)
            assert json.loads((await ws.receive(timeout=20)).data)["type"] == "subscribed"
            await asyncio.to_thread(grow, client, order, 16)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(f["type"] == "changed" for f in frames):
                msg = await ws.receive(timeout=max(deadline - time.monotonic(), 0.01))
                frames.append(json.loads(msg.data))
            await ws.close()
        return frames

    frames = asyncio.run(asyncio.wait_for(scenario(), 90))
    changed = [f for f in frames if f["type"] == "changed"]
    assert changed, [f["type"] for f in frames]
    frame = changed[0]
    assert frame["of"] == "view" and frame["view"] == "ledger" and frame["key"] == order
    assert frame["bytes"] > FRAME_BYTES and "document" not in frame and frame["token"]
    assert all(len(json.dumps(f)) <= FRAME_BYTES for f in frames)
    fetched = httpx.get(f"{url}{frame['fetch']}")
    assert fetched.status_code == 200 and len(fetched.content) > FRAME_BYTES
    # the hub publishes its counts about once a second: wait for the next publication
    elided = 'streams_realtime_frames_elided_total{context="orders"}'
    wait_until(lambda: elided in httpx.get(f"{url}/metrics").text, "the elided frames' metric", 15, every=0.2)


def test_a_list_page_over_its_byte_budget_ends_early_and_the_pages_hold_every_document(
    deployment: Deployment, client: CommandClient
) -> None:
    orders = [f"page-{i}" for i in range(6)]
    for order in orders:
        grow(client, order, 8)  # about 16 KB each: three fit a 50 KB page
    url = f"{deployment.url()}/orders/views/ledger"
    for order in orders:
        answer = httpx.get(f"{url}/{order}", params={"min_version": 8, "timeout": 30}, timeout=40)
        assert answer.status_code == 200
    pages: list[list[str]] = []
    after = ""
    for _ in range(20):
        body = httpx.get(url, params={"limit": 50, "after": after}, timeout=30).json()
        pages.append([item["entity_id"] for item in body["items"]])
        if body["next"] is None:
            break
        after = body["next"]
    seen = [entity for page in pages for entity in page if entity.startswith("page-")]
    assert seen == orders
    assert max(len(page) for page in pages) < len(orders), pages  # the budget cut some page short
