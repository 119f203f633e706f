"""More of the read side on the real stack, with worker processes: a view handler that raises
(DLQ and halt), two workers answering for each other (routing, merged lists), the view metrics,
and the `streams replay / rebuild / verify` commands as subprocesses.

The workers run orders plus a test-only view `fussy` (tests/integration/fussy_orders.py,
registered with STREAMS_CONTEXT_MODULES) whose handler raises for customers named `poison...`.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer
from prometheus_client.parser import text_string_to_metric_families

from streams.client import CommandClient, read_topic
from streams.contexts.orders import AddItem, CancelOrder, ItemAdded, PlaceOrder
from streams.core.clock import utc_now
from streams.wire import headers as h
from streams.wire.topics import partition_for
from tests.conftest import StackEndpoints
from tests.integration.kafka_config import kafka_config
from tests.integration.workers import Deployment, wait_until

pytestmark = pytest.mark.integration
FUSSY_ENV = {
    "STREAMS_CONTEXT_MODULES": "tests.integration.fussy_orders",
    "STREAMS_SINKS": "0",
    "STREAMS_SNAPSHOT_EVERY": "5",
}


def get(dep: Deployment, worker: str, path: str, **query: Any) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{dep.ports[worker]}{urllib.parse.quote(path)}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(url, timeout=70) as response:
            body = response.read()
            return response.status, json.loads(body) if path != "/metrics" else body.decode()
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def view_status(dep: Deployment, worker: str, view: str) -> dict[str, Any]:
    """The served version's status on one worker ({} while its read side is starting)."""
    status, body = get(dep, worker, "/orders/views")
    if status == 404:  # healthy before the read side has started: no such context yet
        return {}
    assert status == 200
    return next((v for v in body["views"] if v["view"] == view and v["active"]), {})


def keys_per_partition(tag: str, partitions: int = 4, per: int = 2) -> dict[int, list[str]]:
    """`per` order ids hashing to each partition."""
    out: dict[int, list[str]] = {p: [] for p in range(partitions)}
    i = 0
    while any(len(ids) < per for ids in out.values()):
        key = f"{tag}-{i}"
        ids = out[partition_for(key.encode(), partitions)]
        if len(ids) < per:
            ids.append(key)
        i += 1
    return out


# --- two workers, DLQ mode ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    dep = Deployment(
        prefix=f"r2{uuid.uuid4().hex[:8]}", data_dir=tmp_path_factory.mktemp("pair"), extra_env=FUSSY_ENV
    )
    dep.start("w1")
    dep.wait_healthy("w1")
    dep.start("w2")
    dep.wait_healthy("w2")

    def split() -> bool:  # both workers own half of every stage's partitions
        for view in ("order-summary", "fussy"):
            one, two = (set(view_status(dep, w, view).get("partitions", ())) for w in ("w1", "w2"))
            if not one or not two or one & two or one | two != {0, 1, 2, 3}:
                return False
        return True

    try:
        wait_until(split, "partitions split between w1 and w2", 120, every=0.3)
        yield dep
    finally:
        dep.stop_all()


@pytest.fixture(scope="module")
def client(pair: Deployment) -> Iterator[CommandClient]:
    with CommandClient(pair.settings(), "orders") as c:
        c.execute("warm-up", PlaceOrder("c-0", "EUR"), timeout=120)
        yield c


def test_a_handler_that_raises_sends_the_event_to_the_view_dlq_and_the_view_goes_on(
    pair: Deployment, client: CommandClient
) -> None:
    poisoned = client.execute("dlq-1", PlaceOrder("poison-1", "EUR"))
    client.execute("dlq-1", AddItem("a", 1, 10))
    after = client.execute("dlq-2", PlaceOrder("fine", "EUR"))
    assert poisoned.accepted and after.accepted

    # the next order is projected: the failure did not stop the stage
    status, body = get(pair, "w1", "/orders/views/fussy/dlq-2", min_version=1, timeout=30)
    assert status == 200 and body["state"] == {"events": 1}
    # the poisoned order's later event is folded (its first one is in the DLQ)
    status, body = get(pair, "w1", "/orders/views/fussy/dlq-1", min_version=2, timeout=30)
    assert status == 200 and body["state"] == {"events": 1} and body["last_event_version"] == 2
    # the other views saw every event of it
    status, body = get(pair, "w1", "/orders/views/order-summary/dlq-1", min_version=2, timeout=30)
    assert status == 200 and body["state"]["customer_id"] == "poison-1"

    dlq = client.runtime.topics.view_dlq("fussy")
    records = [m for m in read_topic(pair.settings(), dlq, idle_timeout=2.0) if m.key() == b"dlq-1"]
    assert len(records) == 1
    headers = h.as_dict(records[0].headers())
    assert headers[h.DLQ_REASON] == "ValueError"
    assert "refusing customer poison-1" in headers[h.DLQ_DETAIL]
    assert headers[h.DLQ_SOURCE].startswith(f"{client.runtime.topics.events}/")
    assert headers["view_version"] == "1" and headers[h.AGGREGATE_VERSION] == "1"
    assert type(client.runtime.codec.decode(records[0].value()).message).__name__ == "OrderPlaced"
    for worker in ("w1", "w2"):
        assert view_status(pair, worker, "fussy")["error"] == ""

    # a re-keyed view whose key function raises: the repartitioner dead-letters the event
    status, body = get(
        pair, "w1", "/orders/views/fussy-keyed/fine", min_version=1, aggregate_id="dlq-2", timeout=30
    )
    assert status == 200 and body["state"] == {"events": 1}
    keyed = client.runtime.topics.view_dlq("fussy-keyed")
    records = [m for m in read_topic(pair.settings(), keyed, idle_timeout=2.0) if m.key() == b"dlq-1"]
    assert len(records) == 1
    headers = h.as_dict(records[0].headers())
    assert headers[h.DLQ_REASON] == "ValueError" and headers["view_version"] == "1"
    assert headers[h.DLQ_SOURCE].startswith(f"{client.runtime.topics.events}/")
    # the order's later events have no key (never placed for a customer): no document anywhere
    assert get(pair, "w2", "/orders/views/fussy-keyed/poison-1")[0] == 404


def test_a_key_owned_by_the_other_worker_is_routed_and_answered_on_both_ports(
    pair: Deployment, client: CommandClient
) -> None:
    ids = keys_per_partition("route")
    last = {}
    for keys in ids.values():
        for order in keys:
            client.execute(order, PlaceOrder("route-cust", "EUR"))
            last[order] = client.execute(order, AddItem("a", 2, 100 + len(order))).aggregate_version
    owned = {w: set(view_status(pair, w, "order-summary")["partitions"]) for w in ("w1", "w2")}
    routed = 0
    for partition, keys in ids.items():
        for order in keys:
            answers = []
            for worker in ("w1", "w2"):
                status, body = get(
                    pair, worker, f"/orders/views/order-summary/{order}", min_version=last[order], timeout=30
                )
                assert status == 200, (worker, order, body)
                answers.append(body)
                routed += partition not in owned[worker]
            assert answers[0] == answers[1]
            assert answers[0]["state"]["total_cents"] == 2 * (100 + len(order))
            assert answers[0]["last_event_version"] == last[order]
    assert routed == len(ids) * 2  # each key was asked once of the worker that does not own it
    # the aggregate endpoints (history index group) route the same way
    for worker in ("w1", "w2"):
        for keys in ids.values():
            status, body = get(pair, worker, f"/orders/aggregates/{keys[0]}")
            assert status == 200 and body["version"] == 2


def test_a_list_merges_the_pages_of_both_workers(pair: Deployment, client: CommandClient) -> None:
    """Random ids (some multi-byte), filters and limits: paging on either worker, following
    `next`, returns exactly the full result, in order, without duplicates."""
    seed = int(time.time())
    print(f"\npaging seed {seed}")
    rng = random.Random(seed)
    ids = keys_per_partition("lst", per=3)
    # a set: two short random ids may be equal, and a second PlaceOrder of one order is rejected
    orders = sorted(
        {order for keys in ids.values() for order in keys}
        | {f"lst-{rng.choice('aé日z')}{uuid.uuid4().hex[: rng.randint(1, 6)]}" for _ in range(14)}
    )
    currency = {order: rng.choice(["GBP", "GBP", "CHF"]) for order in orders}
    cancelled = {order for order in orders if rng.random() < 0.3}
    for order in orders:
        result = client.execute(order, PlaceOrder("lst-cust", currency[order]))
        assert result.accepted
        if order in cancelled:
            assert client.execute(order, CancelOrder("paging test")).accepted
    for order in orders:
        version = 2 if order in cancelled else 1
        get(pair, "w1", f"/orders/views/order-summary/{order}", min_version=version, timeout=30)
    cases = [
        ({"currency": "GBP"}, lambda o: currency[o] == "GBP"),
        ({"currency": "GBP", "status": "placed"}, lambda o: currency[o] == "GBP" and o not in cancelled),
        ({"status": "cancelled", "customer_id": "lst-cust"}, lambda o: o in cancelled),
    ]
    for filters, keep in cases:
        expected = [order for order in orders if keep(order)]
        for worker in ("w1", "w2"):
            status, body = get(pair, worker, "/orders/views/order-summary", **filters, limit=1000)
            assert status == 200 and body["complete"], body
            assert [item["entity_id"] for item in body["items"] if item["entity_id"] in currency] == expected
            limit = rng.randint(1, 7)
            seen, after = [], ""
            while True:
                status, body = get(
                    pair, worker, "/orders/views/order-summary", **filters, limit=limit, after=after
                )
                assert status == 200 and len(body["items"]) <= limit, body
                seen += [item["entity_id"] for item in body["items"]]
                if body["next"] is None:
                    break
                after = body["next"]
            assert [order for order in seen if order in currency] == expected, (worker, filters, limit)
            assert len(seen) == len(set(seen))


def metric_samples(pair: Deployment, worker: str) -> dict[str, list[Any]]:
    status, text = get(pair, worker, "/metrics")
    assert status == 200
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def test_view_metrics_show_lag_latency_and_dlq_counts(pair: Deployment, client: CommandClient) -> None:
    client.execute("metrics-poison", PlaceOrder("poison-m", "EUR"))
    for i in range(5):
        last = client.execute(f"metrics-{i}", PlaceOrder("metrics-cust", "EUR"))
    for view in ("order-summary", "fussy"):
        get(pair, "w1", f"/orders/views/{view}/metrics-4", min_version=last.aggregate_version, timeout=30)

    def summary_lag(worker: str) -> list[float]:
        return [
            s.value
            for s in metric_samples(pair, worker).get("streams_view_lag_events", [])
            if s.labels["view"] == "order-summary" and s.labels["version"] == "1"
        ]

    # lag goes back to 0 once idle (the transaction markers after the last event do not count)
    for worker in ("w1", "w2"):
        wait_until(
            lambda w=worker: summary_lag(w) == [0.0],
            f"lag 0 on {worker}: {summary_lag(worker)}",
            30,
            every=0.3,
        )
        assert view_status(pair, worker, "order-summary")["lag"] == 0

    dlq_total = 0.0
    for worker in ("w1", "w2"):
        samples = metric_samples(pair, worker)
        counts = {
            s.labels["view"]: s.value
            for s in samples["streams_view_latency_seconds_count"]
            if s.labels["version"] == "1"
        }
        sums = {
            s.labels["view"]: s.value
            for s in samples["streams_view_latency_seconds_sum"]
            if s.labels["version"] == "1"
        }
        assert counts["order-summary"] > 0 and counts["fussy"] > 0, worker
        mean = sums["order-summary"] / counts["order-summary"]
        assert 0 < mean < 5.0, f"{worker}: mean event->view latency {mean:.3f}s"
        dlq_total += sum(
            s.value
            for s in samples.get("streams_view_dlq_records_total", [])
            if s.labels["view"] == "fussy" and s.labels["reason"] == "ValueError"
        )
    # every record in the view's DLQ topic is counted once, by the worker that sent it
    dlq = client.runtime.topics.view_dlq("fussy")
    in_topic = len(list(read_topic(pair.settings(), dlq, idle_timeout=2.0)))
    assert dlq_total == in_topic >= 1


# --- the commands, as subprocesses ---------------------------------------------------------------


def streams_cli(dep: Deployment, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli.main", *args],
        env=dep.cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def last_json(output: str) -> Any:
    """The JSON object a command prints last (after its progress lines)."""
    return json.loads(output[output.index("\n{") + 1 :] if not output.startswith("{") else output)


def test_replay_rebuild_and_verify_commands(pair: Deployment, client: CommandClient) -> None:
    # --max-lag 0: the new version must reach the very end of the log, transaction markers
    # included (it never did before the stages stored their position past the markers)
    # one helper process beside the two workers (`--processes 1`): three members, four partitions
    replayed = streams_cli(
        pair, "replay", "orders", "order-summary", "--max-lag", "0", "--timeout", "90", "--processes", "1"
    )
    assert replayed.returncode == 0, replayed.stderr[-3000:]
    report = last_json(replayed.stdout)
    assert report["old_version"] == 1 and report["new_version"] == 2 and report["helpers"] == 1
    assert report["events"] > 0 and report["events_per_s"] > 0 and report["raw_events_per_s"] > 0
    assert " events/s" in replayed.stdout and "lag" in replayed.stdout
    for worker in ("w1", "w2"):
        wait_until(
            lambda w=worker: view_status(pair, w, "order-summary").get("version") == 2,
            "v2 served",
            30,
            every=0.3,
        )
        # a worker taking a helper's partitions back restores them from v2's topic; a request
        # meanwhile waits for that (or is told to retry, 503), never a 404 from a half-filled store
        answers: list[int] = []

        def served(w: str = worker, seen: list[int] = answers) -> bool:
            seen.append(get(pair, w, "/orders/views/order-summary/dlq-2")[0])
            return seen[-1] == 200

        wait_until(served, f"dlq-2 served by {worker}", 60, every=0.2)
        assert set(answers) <= {200, 503}, answers
        status, body = get(pair, worker, "/orders/views/order-summary/dlq-2")
        assert status == 200 and body["version_served"] == 2

    verified = streams_cli(pair, "verify", "orders")
    assert verified.returncode == 0, verified.stdout + verified.stderr[-3000:]
    assert json.loads(verified.stdout)["mismatches"] == []

    pair.stop_all()  # rebuild needs the context's workers stopped
    rebuilt = streams_cli(pair, "rebuild", "orders")
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    counts = json.loads(rebuilt.stdout)
    assert counts["aggregates"] > 20 and counts["events"] >= counts["aggregates"]
    verified = streams_cli(pair, "verify", "orders")
    assert verified.returncode == 0, verified.stdout + verified.stderr[-3000:]
    assert json.loads(verified.stdout)["checked"] == counts["aggregates"]

    # an event appended to the log by hand, behind the state table's back: verify must see it
    runtime = client.runtime
    partition = partition_for(b"route-0", pair.partitions)
    headers = h.event_headers(
        event_type="ItemAdded",
        schema_version=runtime.codec.catalog.latest("ItemAdded").version,
        aggregate_type="Order",
        aggregate_id="route-0",
        aggregate_version=3,
        command_id=str(uuid.uuid4()),
        correlation_id="",
        occurred_at=utc_now(),
    )
    producer = Producer(kafka_config(pair.settings().bootstrap))
    producer.produce(
        runtime.topics.events,
        runtime.codec.encode(ItemAdded("by-hand", 1, 1)),
        b"route-0",
        partition=partition,
        headers=headers,
    )
    assert producer.flush(30) == 0
    verified = streams_cli(pair, "verify", "orders")
    assert verified.returncode == 1, verified.stdout + verified.stderr[-3000:]
    mismatches = json.loads(verified.stdout)["mismatches"]
    assert mismatches == [
        {"aggregate_id": "route-0", "table_version": 2, "log_version": 3, "detail": "state differs"}
    ]


# --- halt mode ------------------------------------------------------------------------------------


def test_with_view_errors_halt_the_stage_stops_and_reports_its_error(
    stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dep = Deployment(
        prefix=f"rh{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path_factory.mktemp("halt"),
        extra_env={**FUSSY_ENV, "STREAMS_VIEW_ERRORS": "halt"},
    )
    dep.start("w1")
    try:
        dep.wait_healthy("w1")
        with CommandClient(dep.settings(), "orders") as writer:
            writer.execute("ok-1", PlaceOrder("fine", "EUR"), timeout=120)
            get(dep, "w1", "/orders/views/fussy/ok-1", min_version=1, timeout=60)
            writer.execute("halt-1", PlaceOrder("poison-2", "EUR"))
            after = writer.execute("ok-2", PlaceOrder("fine", "EUR"))
        wait_until(
            lambda: view_status(dep, "w1", "fussy").get("error", "") != "", "fussy halted", 60, every=0.3
        )
        fussy = view_status(dep, "w1", "fussy")
        assert "ValueError" in fussy["error"] and "refusing customer poison-2" in fussy["error"]
        assert f"{dep.prefix}.orders.events/" in fussy["error"]  # where the failing event is
        wait_until(
            lambda: view_status(dep, "w1", "fussy-keyed").get("error", "") != "",
            "fussy-keyed halted",
            60,
            every=0.3,
        )
        keyed = view_status(dep, "w1", "fussy-keyed")
        assert "repartition" in keyed["error"] and "refusing customer poison-2" in keyed["error"]
        # the halted view does not go past the event; the other views go on
        status, body = get(dep, "w1", "/orders/views/fussy/ok-2", min_version=1, timeout=2)
        assert status in (503, 409), body
        assert view_status(dep, "w1", "order-summary")["error"] == ""
        wait_until(  # 503 "retry" is allowed while the other views' groups settle
            lambda: (
                get(dep, "w1", "/orders/views/order-summary/ok-2", min_version=after.aggregate_version)[0]
                == 200
            ),
            "order-summary serves ok-2",
            60,
            every=0.3,
        )
        for view in ("fussy", "fussy-keyed"):  # halt, not dead-letter
            assert list(read_topic(dep.settings(), f"{dep.prefix}.orders.{view}.dlq", idle_timeout=1.0)) == []
    finally:
        dep.stop_all()
