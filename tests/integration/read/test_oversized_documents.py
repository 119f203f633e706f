"""A document that would outgrow its view topic's record limit cannot halt the view.

The worker runs orders plus the test-only view `hoard` (tests/integration/fussy_orders.py),
whose document keeps 2,000 characters per event, with every topic's limit at 16 kB: an order's
8th event would make its document too large. That event goes to the view's DLQ; the document
keeps its last state that fits; the other documents and views go on.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from streams.client import CommandClient, read_topic
from streams.contexts.orders import AddItem, PlaceOrder
from streams.wire import headers as h
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment, deployed, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployed(
        tmp_path_factory.mktemp("worker"),
        "od",
        STREAMS_CONTEXT_MODULES="tests.integration.fussy_orders",
        STREAMS_MAX_MESSAGE_BYTES="16384",
        STREAMS_SINKS="0",
    ) as dep:
        yield dep


def document(dep: Deployment, view: str, entity_id: str, **query: Any) -> tuple[int, Any]:
    url = f"{dep.url()}/orders/views/{view}/{entity_id}?" + "&".join(f"{k}={v}" for k, v in query.items())
    try:
        with urllib.request.urlopen(url, timeout=70) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_event_that_would_outgrow_a_document_is_dead_lettered_and_the_view_goes_on(
    deployment: Deployment, client: CommandClient
) -> None:
    for order in ("big-1", "big-2"):
        assert client.execute(order, PlaceOrder("c", "EUR")).accepted
        for i in range(10):
            assert client.execute(order, AddItem(f"sku-{i}", 1, 100)).accepted
    status, summary = document(deployment, "order-summary", "big-2", min_version=11, timeout=30)
    assert status == 200 and summary["last_event_version"] == 11
    status, hoard = document(deployment, "hoard", "big-2")
    assert status == 200
    kept = len(hoard["state"]["kept"])
    assert 5 <= kept < 11, kept
    # a frozen document is visible: the document says so, a metric counts it, a line is logged
    assert hoard["state"]["_frozen"]["reason"] == "document_too_large", hoard["state"].get("_frozen")
    with urllib.request.urlopen(f"{deployment.url()}/metrics", timeout=30) as response:
        exposition = response.read().decode()
    assert 'streams_view_frozen_documents_total{context="orders",version="1",view="hoard"}' in exposition
    assert "document 'big-2' is frozen" in deployment.log_tail("w1", 100000)

    def all_letters() -> list[Any] | None:
        found = list(
            read_topic(deployment.settings(), client.runtime.topics.view_dlq("hoard"), idle_timeout=1.0)
        )
        return found if len(found) >= 2 * (11 - kept) else None

    letters: list[Any] = wait_until(all_letters, f"{2 * (11 - kept)} dead letters of hoard", 30, every=0)
    reasons = Counter(h.as_dict(m.headers())[h.DLQ_REASON] for m in letters)
    assert reasons == {"document_too_large": 2 * (11 - kept)}, reasons
    detail = h.as_dict(letters[0].headers())[h.DLQ_DETAIL]
    assert "the view topic's limit: 16384" in detail
    # the view keeps serving, and keeps folding what fits
    assert client.execute("small", PlaceOrder("c", "EUR")).accepted

    def served() -> Any:
        status, body = document(deployment, "hoard", "small")
        return body if status == 200 else None

    small = wait_until(served, "hoard serves the small order", 20, every=0.2)
    assert len(small["state"]["kept"]) == 1
    with urllib.request.urlopen(f"{deployment.url()}/orders/views", timeout=30) as response:
        views = json.loads(response.read())["views"]
    assert all(v["error"] == "" for v in views), views
