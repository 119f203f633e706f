"""The compose stack's own workers and connectors (docker-compose.yml), run by `make compose-test`.

`ops/containers.sh compose-test` starts the stack and sets STREAMS_COMPOSE_WORKERS to the two
workers' host URLs; the `stack` fixture (STREAMS_TEST_STACK=external) points at the compose ports.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import StackEndpoints

pytestmark = pytest.mark.integration
BEARER = {"Authorization": f"Bearer {os.environ.get('STREAMS_COMPOSE_TOKEN', '')}"}  # .env's token
"""docker-compose.yml sets a bearer token (its default unless STREAMS_AUTH_TOKEN is set)."""


@pytest.fixture(scope="module")
def workers(stack: StackEndpoints) -> list[str]:
    urls = [u for u in os.environ.get("STREAMS_COMPOSE_WORKERS", "").split(",") if u]
    if len(urls) != 2:
        pytest.fail("needs the compose stack: run `make compose-test` (sets STREAMS_COMPOSE_WORKERS)")
    return urls


def wait_for(check: Callable[[], Any], what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.HTTPError as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def post(worker: str, command: str, aggregate: str, data: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.post(
        f"{worker}/orders/commands/{command}",
        json={"aggregate_id": aggregate, "data": data},
        params={"timeout": "60"},
        headers=BEARER,
        timeout=90,
    )
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def commands_handled(worker: str) -> float:
    text = httpx.get(f"{worker}/metrics", headers=BEARER, timeout=10).text
    return sum(float(v) for v in re.findall(r"^streams_commands_total\{[^}]*\} ([0-9.e+]+)$", text, re.M))


def test_both_workers_accept_commands_and_share_the_partitions(workers: list[str]) -> None:
    run = uuid.uuid4().hex[:6]
    before = [commands_handled(w) for w in workers]
    for i in range(16):  # 16 aggregates over 4 partitions: each worker owns some of them
        result = post(workers[i % 2], "PlaceOrder", f"cmp-{run}-{i}", {"customer_id": "c", "currency": "EUR"})
        assert result["status"] == "accepted" and result["aggregate_version"] == 1, result
    after = [commands_handled(w) for w in workers]
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)
    assert sum(after) - sum(before) == 16


def test_a_query_is_answered_by_either_worker(workers: list[str]) -> None:
    order = f"cmp-q-{uuid.uuid4().hex[:6]}"
    post(workers[0], "PlaceOrder", order, {"customer_id": "alice", "currency": "EUR"})
    post(workers[1], "AddItem", order, {"sku": "book", "quantity": 2, "unit_price_cents": 1500})
    for worker in workers:  # one of them owns the partition, the other routes the query to it
        resp = httpx.get(
            f"{worker}/orders/views/order-summary/{order}",
            params={"min_version": "2"},
            headers=BEARER,
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        document = resp.json()
        assert document["state"]["total_cents"] == 3000 and document["last_event_version"] == 2, document


def test_the_deployed_connectors_copy_the_workers_events_into_postgres(
    stack: StackEndpoints, workers: list[str]
) -> None:
    for sink in ("eventstore", "snapshots", "readmodels"):
        state = httpx.get(f"{stack.connect_url}/connectors/orders-{sink}-sink/status", timeout=10).json()
        assert state["connector"]["state"] == "RUNNING", state
        assert state["tasks"] and all(t["state"] == "RUNNING" for t in state["tasks"]), state
    order = f"cmp-pg-{uuid.uuid4().hex[:6]}"
    post(workers[0], "PlaceOrder", order, {"customer_id": "bob", "currency": "EUR"})
    post(workers[1], "AddItem", order, {"sku": "pen", "quantity": 1, "unit_price_cents": 250})

    def rows() -> list[tuple[Any, ...]]:
        with psycopg.connect(stack.pg_dsn, autocommit=True) as conn:
            return conn.execute(
                "select version, eventtype, eventdata->>'customer_id' from public.eventstore "
                "where aggregateid = %s order by version",
                (order,),
            ).fetchall()

    assert wait_for(lambda: len(rows()) == 2 and rows(), "two eventstore rows") == [
        (1, "OrderPlaced", "bob"),
        (2, "ItemAdded", None),
    ]

    def summary() -> list[tuple[Any, ...]]:
        with psycopg.connect(stack.pg_dsn, autocommit=True) as conn:
            return conn.execute(
                "select lasteventversion, (state->>'total_cents')::int from public.genericreadmodel "
                "where entityid = %s and entitytype = 'orders.order-summary' and lasteventversion = 2",
                (order,),
            ).fetchall()

    assert wait_for(summary, "the order-summary row at version 2") == [(2, 250)]


def test_prometheus_scrapes_both_workers(workers: list[str]) -> None:
    prometheus = os.environ.get("STREAMS_COMPOSE_PROMETHEUS", "")
    if not prometheus:
        pytest.fail("needs the compose stack: run `make compose-test` (sets STREAMS_COMPOSE_PROMETHEUS)")

    def workers_up() -> list[str]:
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        up = sorted(
            t["labels"]["instance"]
            for t in targets
            if t["labels"]["job"] == "streams-worker" and t["health"] == "up"
        )
        return up if len(up) == 2 else []

    assert wait_for(workers_up, "both workers scraped") == ["worker1:6066", "worker2:6066"]
    run = uuid.uuid4().hex[:6]
    for i in range(16):  # over every partition, so both workers count commands
        post(workers[0], "PlaceOrder", f"cmp-m-{run}-{i}", {"customer_id": "c", "currency": "EUR"})

    def instances_with_commands() -> set[str]:
        # a worker's series appear once it has handled a command and been scraped since (every 5 s)
        series = httpx.get(
            f"{prometheus}/api/v1/query", params={"query": "streams_commands_total"}, timeout=10
        ).json()["data"]["result"]
        found = {s["metric"]["instance"] for s in series}
        return found if len(found) == 2 else set()

    assert wait_for(instances_with_commands, "both workers' command counters", timeout=60) == {
        "worker1:6066",
        "worker2:6066",
    }
