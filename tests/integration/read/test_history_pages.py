"""An aggregate with a long history is read a page at a time, off the event loop.

The history lookup behind `/aggregates/<id>` and `/events` used to list every version of the
aggregate on the event loop (and build a consumer with librdkafka's 64 MiB prefetch per
request): with 20,000 versions, a few concurrent history requests held every other route up.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from streams.client import CommandClient
from streams.contexts.orders import AddItem, PlaceOrder
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment, deployed, wait_until

pytestmark = pytest.mark.integration

VERSIONS = 20_001
HEALTH_P95_BOUND_S = 0.05
"""An idle worker answers /health in a few milliseconds here; see test_long_polls.py."""
RESULTS = Path(__file__).resolve().parents[3] / "bench" / "results" / "history_pages.json"


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployed(tmp_path_factory.mktemp("worker"), "hp", STREAMS_SINKS="0") as dep:
        yield dep


@pytest.fixture(scope="module")
def long_order(deployment: Deployment, client: CommandClient) -> str:
    """An order with VERSIONS versions, all indexed."""
    order = "long-history"
    assert client.execute(order, PlaceOrder("c", "EUR")).accepted
    futures = [client.send(order, AddItem(f"sku-{i % 5}", 1, 100))[1] for i in range(VERSIONS - 1)]
    client.flush()
    assert all(f is not None and f.result(timeout=120).accepted for f in futures)

    def indexed() -> bool:
        answer = httpx.get(f"{deployment.url()}/orders/aggregates/{order}/events", params={"limit": 1})
        return answer.status_code == 200 and answer.json()["latest_version"] == VERSIONS

    wait_until(indexed, f"the history index to reach {VERSIONS}", 60, every=0.2)
    return order


def test_pages_of_a_long_history_follow_each_other_to_the_end(
    deployment: Deployment, long_order: str
) -> None:
    url = f"{deployment.url()}/orders/aggregates/{long_order}/events"
    first = httpx.get(url, params={"from_version": VERSIONS - 14, "limit": 10}).json()
    assert [e["version"] for e in first["events"]] == list(range(VERSIONS - 14, VERSIONS - 4))
    assert first["next"] == VERSIONS - 4 and first["latest_version"] == VERSIONS
    last = httpx.get(url, params={"from_version": first["next"], "limit": 10}).json()
    assert [e["version"] for e in last["events"]] == list(range(VERSIONS - 4, VERSIONS + 1))
    assert last["next"] is None
    beyond = httpx.get(url, params={"from_version": VERSIONS + 5}).json()
    assert beyond["events"] == [] and beyond["next"] is None


def test_state_at_a_version_and_now(deployment: Deployment, long_order: str) -> None:
    url = f"{deployment.url()}/orders/aggregates/{long_order}"
    now = httpx.get(url, timeout=30).json()
    assert now["version"] == VERSIONS == now["latest_version"]
    assert sum(line["quantity"] for line in now["state"]["lines"]) == VERSIONS - 1
    at = httpx.get(url, params={"at_version": 1234}, timeout=30).json()
    assert at["version"] == 1234 and sum(line["quantity"] for line in at["state"]["lines"]) == 1233
    assert httpx.get(url, params={"at_version": VERSIONS + 1}).status_code == 404
    assert httpx.get(f"{deployment.url()}/orders/aggregates/nobody").status_code == 404


def _health_p95(url: str, samples: int) -> float:
    took = []
    with httpx.Client(timeout=30) as http:
        for _ in range(samples):
            started = time.perf_counter()
            assert http.get(f"{url}/health").status_code == 200
            took.append(time.perf_counter() - started)
    return statistics.quantiles(took, n=20)[-1]


def test_history_requests_leave_health_fast(deployment: Deployment, long_order: str) -> None:
    url = deployment.url()
    stop = threading.Event()
    statuses: list[int] = []

    def reader(i: int) -> None:  # threads: the readers must not share the measuring event loop
        path = f"{url}/orders/aggregates/{long_order}"
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                if i % 2:
                    statuses.append(http.get(path, params={"at_version": VERSIONS - i}).status_code)
                else:
                    statuses.append(http.get(f"{path}/events").status_code)

    idle = _health_p95(url, 50)
    readers = [threading.Thread(target=reader, args=(i,)) for i in range(10)]
    for thread in readers:
        thread.start()
    try:
        wait_until(lambda: len(statuses) >= 10, "every reader under way", 60, every=0.01)
        loaded = _health_p95(url, 100)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    figures = {
        "versions": VERSIONS,
        "concurrent_readers": 10,
        "health_p95_s_idle": idle,
        "health_p95_s": loaded,
    }
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    assert statuses and set(statuses) == {200}
    assert loaded < HEALTH_P95_BOUND_S, f"/health p95 {loaded * 1000:.1f} ms (idle {idle * 1000:.1f})"
