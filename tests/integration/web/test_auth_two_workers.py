"""Auth on two workers sharing the partitions: every route, forwarded or not, asks the same.

With `STREAMS_AUTH_TOKEN` set, every route of the OpenAPI document is called on both workers
without a token (401, but for the open routes), with the bearer header and with `access_token`
(never 401/403, never 5xx). Keys owned by the other worker are forwarded with a worker signature,
not the caller's token, and lists merge both workers' pages; when that worker is gone, 502.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from streams.client import CommandClient
from streams.config import Settings
from streams.contexts.orders import AddItem, PlaceOrder
from streams.contexts.registry import get_context
from streams.web.auth import OPEN_PATHS
from streams.web.openapi import openapi_document
from streams.wire.topics import partition_for
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment, running, wait_until, warmed_client

pytestmark = pytest.mark.integration
TOKEN = "two-worker-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
PATHS = openapi_document(Settings(), {"orders": get_context("orders")})["paths"]


@pytest.fixture(scope="module")
def pair(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    dep = Deployment(
        prefix=f"a2{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path_factory.mktemp("pair"),
        extra_env={"STREAMS_AUTH_TOKEN": TOKEN, "STREAMS_SECRET": "test-secret", "STREAMS_SINKS": "0"},
    )
    with running(dep, "w1", "w2"):
        yield dep


@pytest.fixture(scope="module")
def orders(pair: Deployment) -> Iterator[CommandClient]:
    with warmed_client(pair.settings()) as client:
        for i in range(8):
            client.execute(f"o-{i}", PlaceOrder("c", "EUR"))
            client.execute(f"o-{i}", AddItem("w", 1, 1))
        yield client


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "o-1", path)


def get_paths() -> list[str]:
    return [concrete(p) for p, item in PATHS.items() if "get" in item and not p.startswith("/realtime/")]


@pytest.mark.parametrize("worker", ["w1", "w2"])
def test_every_route_needs_the_token_unless_it_is_open(
    pair: Deployment, orders: CommandClient, worker: str
) -> None:
    for path in get_paths():
        anonymous = httpx.get(f"{pair.url(worker)}{path}", timeout=30)
        if path in OPEN_PATHS:
            assert anonymous.status_code in (200, 503), (path, anonymous.text)
        else:
            assert anonymous.status_code == 401, (path, anonymous.status_code)
            assert anonymous.json()["reason"] == "unauthorized"
        for how in ({"headers": BEARER}, {"params": {"access_token": TOKEN}}):
            answer = httpx.get(f"{pair.url(worker)}{path}", timeout=70, **how)  # type: ignore[arg-type]
            assert answer.status_code not in (401, 403) and answer.status_code < 500, (path, how, answer.text)
    post = httpx.post(
        f"{pair.url(worker)}/orders/commands/PlaceOrder", json={"aggregate_id": "x", "data": {}}
    )
    assert post.status_code == 401
    wrong = httpx.get(
        f"{pair.url(worker)}/metrics", headers={"Authorization": b"Bearer \xff\xfe"}, timeout=30
    )
    assert wrong.status_code == 401  # a header that is not UTF-8: refused, not a 500


def test_keys_of_the_other_worker_are_forwarded_with_the_bearer_token(
    pair: Deployment, orders: CommandClient
) -> None:
    owners: dict[str, set[int]] = {}
    for worker in ("w1", "w2"):
        views = httpx.get(f"{pair.url(worker)}/orders/views", headers=BEARER, timeout=30).json()["views"]
        summary = next(v for v in views if v["view"] == "order-summary" and v["active"])
        owners[worker] = set(summary["partitions"])
    assert owners["w1"] and owners["w2"], owners  # the partitions are shared
    for i in range(8):
        key = f"o-{i}"
        partition = partition_for(key.encode(), pair.partitions)
        asked = "w1" if partition in owners["w2"] else "w2"  # the worker that does not own it
        for how in ({"headers": BEARER}, {"params": {"access_token": TOKEN}}):
            doc = httpx.get(f"{pair.url(asked)}/orders/views/order-summary/{key}", timeout=60, **how)  # type: ignore[arg-type]
            assert doc.status_code == 200, (key, asked, doc.text)
            assert doc.json()["last_event_version"] == 2
            history = httpx.get(f"{pair.url(asked)}/orders/aggregates/{key}", timeout=60, **how)  # type: ignore[arg-type]
            assert history.status_code == 200 and history.json()["version"] == 2, history.text


def test_a_list_merges_both_workers_with_the_bearer_token(pair: Deployment, orders: CommandClient) -> None:
    for worker in ("w1", "w2"):
        seen: list[str] = []
        after = ""
        for _ in range(20):
            page = httpx.get(
                f"{pair.url(worker)}/orders/views/order-summary",
                params={"limit": 3, "after": after},
                headers=BEARER,
                timeout=60,
            )
            assert page.status_code == 200, page.text
            body: dict[str, Any] = page.json()
            seen += [item["entity_id"] for item in body["items"]]
            if body["next"] is None:
                break
            after = body["next"]
        assert [k for k in seen if k.startswith("o-")] == [f"o-{i}" for i in range(8)]


def test_a_worker_that_is_gone_makes_its_keys_and_lists_answer_502_until_the_group_moves_them(
    pair: Deployment, orders: CommandClient
) -> None:
    """Killed (no leave), w2 still owns its partitions until its session times out: w1 forwards the
    requests for w2's keys and the parts of lists on w2 to a worker that does not answer, and says so:
    502 `worker_unavailable` (problem+json), not a 500 and not a made-up document. Once the group has
    moved the partitions, w1 answers them itself; meanwhile only 502 or 503 `rebalancing`."""
    views = httpx.get(f"{pair.url('w2')}/orders/views", headers=BEARER, timeout=30).json()["views"]
    owned = set(next(v for v in views if v["view"] == "order-summary" and v["active"])["partitions"])
    keys = [f"o-{i}" for i in range(8) if partition_for(f"o-{i}".encode(), pair.partitions) in owned]
    assert keys, owned
    pair.kill("w2")
    document = f"{pair.url('w1')}/orders/views/order-summary/{keys[0]}"
    listing = f"{pair.url('w1')}/orders/views/order-summary"
    for url in (document, listing):
        answer = httpx.get(url, headers=BEARER, timeout=60)
        assert answer.status_code == 502, (url, answer.status_code, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["reason"] == "worker_unavailable", answer.text

    def served() -> bool:
        answers = [httpx.get(url, headers=BEARER, timeout=60) for url in (document, listing)]
        for answer in answers:
            assert answer.status_code in (200, 502, 503), answer.text
            if answer.status_code == 503:  # (routing.py's "no worker owns partition" has no Retry-After)
                assert answer.json()["reason"] == "rebalancing", answer.text
        return all(answer.status_code == 200 for answer in answers)

    wait_until(served, "w1 serving w2's partitions", timeout=90, every=0.5)
    for key in keys:
        doc = httpx.get(f"{pair.url('w1')}/orders/views/order-summary/{key}", headers=BEARER, timeout=60)
        assert doc.status_code == 200 and doc.json()["last_event_version"] == 2, doc.text
