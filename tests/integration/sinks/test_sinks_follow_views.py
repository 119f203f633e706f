"""The PostgreSQL read models follow the read side: a view whose key moves retracts its old rows,
and after `streams replay` switches a view to a new version the rows are that version's.

Same set-up as test_connect_sinks.py (kit.py: a private Connect worker, a schema of our own), with the
test-only orders variant (tests/integration/fussy_orders.py) so that `orders-by-status`, keyed
by customer and status, is there; the deriver copies every declared view.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Producer

from streams.client import CommandClient
from streams.config import Settings
from streams.contexts.orders import AddItem, CancelOrder, ConfirmOrder, PlaceOrder, ShipOrder
from streams.core.views import ReadModelDocument
from streams.read.replay import replay
from streams.sinks.connect import deploy, status
from tests.conftest import StackEndpoints
from tests.integration.kafka_config import kafka_config
from tests.integration.sinks.kit import PrivateConnect, query, sink_settings, wait_for
from tests.integration.workers import Deployment, deployed, warmed_client

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployed(
        tmp_path_factory.mktemp("worker"), "sv", STREAMS_CONTEXT_MODULES="tests.integration.fussy_orders"
    ) as dep:
        yield dep


@pytest.fixture(scope="module")
def settings(deployment: Deployment, connect: PrivateConnect) -> Iterator[Settings]:
    with sink_settings(deployment, connect) as s:
        deploy(s)
        wait_for(
            s,
            lambda: (
                all(
                    e["state"] == "RUNNING" and all(t["state"] == "RUNNING" for t in e["tasks"])
                    for e in status(s)
                )
                and status(s)
            ),
            "connectors running",
        )
        yield s


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[CommandClient]:
    with warmed_client(settings) as c:
        yield c


def rows(settings: Settings, entity_type: str, prefix: str) -> dict[str, tuple[object, ...]]:
    found = query(
        settings,
        "select EntityID, State, LastEventVersion from {s}.GenericReadModel "
        "where EntityType = %s and EntityID like %s",
        entity_type,
        f"{prefix}%",
    )
    return {r[0]: r[1:] for r in found}


def test_a_view_whose_key_moves_leaves_only_the_current_rows(
    settings: Settings, client: CommandClient
) -> None:
    customer = f"kc-{uuid.uuid4().hex[:6]}"
    one, two, three = (f"{customer}-{i}" for i in range(3))
    for order in (one, two, three):
        assert client.execute(order, PlaceOrder(customer)).accepted
    assert client.execute(one, AddItem("a", 1, 5)).accepted
    assert client.execute(one, ConfirmOrder()).accepted
    assert client.execute(one, ShipOrder("DHL")).accepted
    assert client.execute(two, CancelOrder("no")).accepted
    expected = {f"{customer}:placed": [three], f"{customer}:shipped": [one], f"{customer}:cancelled": [two]}

    def current() -> dict[str, object]:
        found = rows(settings, "orders.orders-by-status", f"{customer}:")
        return {key: state["orders"] for key, (state, _) in found.items()}  # type: ignore[index]

    assert wait_for(settings, lambda: current() == expected and current(), "rows moved") == expected


def test_after_a_replay_the_rows_are_the_new_versions(
    settings: Settings, client: CommandClient, deployment: Deployment
) -> None:
    tag = f"rp-{uuid.uuid4().hex[:6]}"
    orders = [f"{tag}-{i}" for i in range(8)]
    for order in orders:
        assert client.execute(order, PlaceOrder(f"{tag}-c")).accepted
    wait_for(settings, lambda: len(rows(settings, "orders.order-summary", tag)) == 8, "v1 rows")
    # a document only version 1 holds (as if the view's code had changed): its row must go
    ghost = f"{tag}-ghost"
    document = ReadModelDocument(ghost, "orders.order-summary", json.dumps({"status": "ghost"}), 1, "")
    producer = Producer(kafka_config(settings.bootstrap))
    producer.produce(
        client.runtime.topics.view("order-summary"), client.runtime.codec.encode(document), ghost
    )
    assert producer.flush(30) == 0
    wait_for(settings, lambda: ghost in rows(settings, "orders.order-summary", tag), "the ghost row")
    report = replay(settings, client.runtime, "order-summary", max_lag=0, timeout_s=300)
    assert report.new_version == 2
    wait_for(
        settings, lambda: ghost not in rows(settings, "orders.order-summary", tag), "ghost row deleted", 120
    )
    # version 1's topic is gone; a change now only reaches version 2's, and PostgreSQL
    assert client.execute(orders[0], AddItem("after-replay", 2, 7)).accepted
    wait_for(
        settings,
        lambda: rows(settings, "orders.order-summary", orders[0]).get(orders[0], (None, 0))[1] == 2,
        "the row of a change made after the replay",
        120,
    )
    (state, version) = rows(settings, "orders.order-summary", orders[0])[orders[0]]
    assert version == 2 and state["items"] == [  # type: ignore[index]
        {"sku": "after-replay", "quantity": 2, "unit_price_cents": 7}
    ]
    assert set(rows(settings, "orders.order-summary", tag)) == set(orders)
    assert not rows(settings, "orders.order-summary.v2", "")  # one entity type whatever the version
