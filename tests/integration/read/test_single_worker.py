"""The read side end to end on the real stack: projections, query API, time travel, replay,
aggregate rebuild and snapshots, with a worker process."""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.client import CommandClient, read_topic
from streams.contexts.orders import VIEWS, AddItem, CancelOrder, ConfirmOrder, PlaceOrder, RemoveItem
from streams.core.views import fold_view
from streams.kafka.runtime import ContextRuntime
from streams.read.rebuild import rebuild, rebuild_aggregate, verify
from streams.read.replay import replay
from streams.read.stage import event_meta
from streams.wire import headers as h
from streams.wire.jsonable import to_json
from tests.integration.kafka_config import kafka_config
from tests.integration.workers import Deployment, module_deployment, wait_until

pytestmark = pytest.mark.integration
SUMMARY, BY_CUSTOMER = VIEWS


deployment = module_deployment("r", STREAMS_SNAPSHOT_EVERY="5", STREAMS_SINKS="0")


def get(dep: Deployment, path: str, **query: Any) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{dep.ports['w1']}{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(url, timeout=70) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def log_of(dep: Deployment, runtime: ContextRuntime) -> list[tuple[Any, Any]]:
    """Every (event, meta) in the log, in log order per partition."""
    out = []
    for msg in read_topic(dep.settings(), runtime.topics.events, idle_timeout=1.0):
        meta = event_meta(msg.headers(), msg.key().decode())
        out.append((runtime.codec.decode(msg.value()).message, meta))
    return out


def served_state(dep: Deployment, document: str, state: Any) -> None:
    """Wait until `GET /orders/views/<document>` answers with `state`."""
    wait_until(lambda: get(dep, f"/orders/views/{document}")[1].get("state") == state, document, 60, 0.3)


def some_orders(client: CommandClient, n: int, tag: str) -> dict[str, int]:
    """n orders over a few customers with adds, removes, confirms and cancels; id -> last version."""
    rng = random.Random(tag)
    versions = {}
    for i in range(n):
        order = f"{tag}-{i}"
        last = client.execute(order, PlaceOrder(f"{tag}-cust-{i % 3}", "EUR"))
        for sku in rng.sample(["a", "b", "c", "d"], rng.randint(1, 3)):
            last = client.execute(order, AddItem(sku, rng.randint(1, 4), 100))
        if rng.random() < 0.3:
            last = client.execute(order, RemoveItem(rng.choice(["a", "b", "c", "d"])))
        roll = rng.random()
        if roll < 0.3:
            last = client.execute(order, ConfirmOrder())
        elif roll < 0.5:
            last = client.execute(order, CancelOrder("changed my mind"))
        versions[order] = last.aggregate_version if last.accepted else versions.get(order, 1)
    return versions


def test_each_view_equals_the_fold_of_the_log(deployment: Deployment, client: CommandClient) -> None:
    versions = some_orders(client, 12, "fold")
    for order, version in versions.items():
        status, _ = get(deployment, f"/orders/views/order-summary/{order}", min_version=version, timeout=30)
        assert status == 200
    expected = fold_view(SUMMARY, log_of(deployment, client.runtime))
    for order in versions:
        status, body = get(deployment, f"/orders/views/order-summary/{order}")
        assert status == 200 and body["state"] == expected[order].state
        assert body["last_event_version"] == expected[order].last_event_version

    by_customer = fold_view(BY_CUSTOMER, log_of(deployment, client.runtime))
    for customer in {f"fold-cust-{i}" for i in range(3)}:
        doc = by_customer.get(customer)
        status, body = get(deployment, f"/orders/views/orders-by-customer/{customer}", timeout=30)
        if doc is None or doc.state is None:
            assert status == 404
        else:
            served_state(deployment, f"orders-by-customer/{customer}", doc.state)


def test_documents_reach_the_compacted_view_topic_with_version_and_time(
    deployment: Deployment, client: CommandClient
) -> None:
    client.execute("topic-1", PlaceOrder("topic-cust", "EUR"))
    added = client.execute("topic-1", AddItem("a", 2, 150))
    get(deployment, "/orders/views/order-summary/topic-1", min_version=added.aggregate_version, timeout=30)
    topic = client.runtime.topics.view("order-summary")
    latest = None
    for msg in read_topic(deployment.settings(), topic, idle_timeout=1.0):
        if msg.key() == b"topic-1":
            latest = client.runtime.codec.decode(msg.value()).message
    assert latest is not None and latest.entity_type == "orders.order-summary"
    assert latest.last_event_version == 2 and latest.last_updated.endswith("Z")
    assert json.loads(latest.state)["total_cents"] == 300


def test_lists_page_through_documents_filtered_by_status(
    deployment: Deployment, client: CommandClient
) -> None:
    for i in range(7):
        result = client.execute(f"list-{i}", PlaceOrder("list-cust", "USD"))
    get(deployment, "/orders/views/order-summary/list-6", min_version=result.aggregate_version, timeout=30)
    seen: list[str] = []
    after = ""
    while True:
        status, body = get(deployment, "/orders/views/order-summary", currency="USD", limit=3, after=after)
        assert status == 200 and body["complete"]
        seen += [item["entity_id"] for item in body["items"]]
        if body["next"] is None:
            break
        after = body["next"]
    assert seen == sorted(f"list-{i}" for i in range(7))


def test_read_your_writes_never_returns_an_older_version(
    deployment: Deployment, client: CommandClient
) -> None:
    client.execute("ryw-1", PlaceOrder("ryw", "EUR"))
    for i in range(15):
        result = client.execute("ryw-1", AddItem("a", 1, 10))
        status, body = get(
            deployment, "/orders/views/order-summary/ryw-1", min_version=result.aggregate_version, timeout=20
        )
        assert status == 200 and body["last_event_version"] >= result.aggregate_version, i
    status, body = get(deployment, "/orders/views/order-summary/ryw-1", min_version=999, timeout=0.5)
    assert (
        status == 409 and body["reason"] == "not_reached" and "has not reached version 999" in body["error"]
    )


def test_bad_queries_get_404_or_400_naming_the_parameter(
    deployment: Deployment, client: CommandClient
) -> None:
    assert get(deployment, "/orders/views/order-summary/no-such-order")[0] == 404
    assert get(deployment, "/orders/views/no-such-view/x")[0] == 404
    assert get(deployment, "/orders/aggregates/no-such-order")[0] == 404
    status, body = get(deployment, "/orders/views/order-summary/x", min_version="abc")
    assert status == 400 and "min_version" in body["error"]
    status, body = get(deployment, "/orders/views/order-summary", limit="0")
    assert status == 400 and "limit" in body["error"]
    status, body = get(deployment, "/orders/views/order-summary", colour="red")
    assert status == 400 and "colour" in body["error"]
    status, body = get(deployment, "/orders/aggregates/x", as_of="yesterday")
    assert status == 400 and "as_of" in body["error"]


def test_time_travel_gives_the_fold_up_to_a_version_or_a_time(
    deployment: Deployment, client: CommandClient
) -> None:
    client.execute("tt-1", PlaceOrder("tt", "EUR"))
    for i in range(22):
        last = client.execute("tt-1", AddItem(f"s{i % 4}", 1, 10 + i % 4))
        time.sleep(0.01)  # spaces the events' timestamps (as_of picks between them), not a wait
    get(deployment, "/orders/views/order-summary/tt-1", min_version=last.aggregate_version, timeout=30)
    records = [
        m
        for m in read_topic(deployment.settings(), client.runtime.topics.events, idle_timeout=1.0)
        if m.key() == b"tt-1"
    ]
    events = [client.runtime.codec.decode(m.value()).message for m in records]
    times = [h.as_dict(m.headers())[h.OCCURRED_AT] for m in records]
    wait_until(
        lambda: get(deployment, "/orders/aggregates/tt-1")[1].get("latest_version") == len(events),
        "the history at the last version",
        60,
        0.3,
    )
    rng = random.Random(4)
    for version in rng.sample(range(1, len(events) + 1), 8):
        status, body = get(deployment, "/orders/aggregates/tt-1", at_version=version)
        assert status == 200 and body["version"] == version
        assert body["state"] == to_json(client.runtime.context.fold(events[:version]))
    for index in rng.sample(range(len(events)), 5):
        status, body = get(deployment, "/orders/aggregates/tt-1", as_of=times[index])
        version = max(i + 1 for i, t in enumerate(times) if t <= times[index])
        assert status == 200 and body["version"] == version
        assert body["state"] == to_json(client.runtime.context.fold(events[:version]))
    status, body = get(deployment, "/orders/aggregates/tt-1", at_version=len(events))
    assert body["from_snapshot"] == 20 and body["events_read"] == len(events) - 20

    pages, start = [], 1
    while start is not None:
        status, body = get(deployment, "/orders/aggregates/tt-1/events", from_version=start, limit=10)
        pages += body["events"]
        start = body["next"]
    assert [e["version"] for e in pages] == list(range(1, len(events) + 1))


def test_snapshot_plus_tail_equals_the_full_fold(deployment: Deployment, client: CommandClient) -> None:
    client.execute("snap-1", PlaceOrder("snap", "EUR"))
    for _ in range(13):
        client.execute("snap-1", AddItem("a", 1, 1))
    settings = deployment.settings()
    with_snapshot = rebuild_aggregate(settings, client.runtime, "snap-1", use_snapshot=True)
    without = rebuild_aggregate(settings, client.runtime, "snap-1", use_snapshot=False)
    assert with_snapshot.snapshot_version == 10 and with_snapshot.events_folded == 4
    assert with_snapshot.aggregate == without.aggregate and without.aggregate.version == 14


def test_replay_beside_the_live_view_switches_to_an_equal_new_version(
    deployment: Deployment, client: CommandClient
) -> None:
    stop = threading.Event()
    sent: list[str] = []

    def keep_sending() -> None:
        with CommandClient(deployment.settings(), "orders") as writer:
            i = 0
            while not stop.is_set():
                writer.execute(
                    f"replay-{i % 20}", PlaceOrder("replay-cust", "EUR") if i < 20 else AddItem("x", 1, 5)
                )
                sent.append(f"replay-{i % 20}")
                i += 1

    thread = threading.Thread(target=keep_sending)
    thread.start()
    try:
        wait_until(lambda: len(sent) >= 40, "commands arriving before the replay", 60, 0.1)
        progress: list[Any] = []
        report = replay(
            deployment.settings(),
            client.runtime,
            "order-summary",
            on_progress=progress.append,
            max_lag=50,
            drop_after_s=3,
        )
        assert report.new_version == 2 and progress
        status, body = get(deployment, "/orders/views/order-summary/replay-0")
        assert status == 200 and body["version_served"] == 2
    finally:
        stop.set()
        thread.join()
    last = client.execute("replay-0", AddItem("y", 1, 1))
    get(deployment, "/orders/views/order-summary/replay-0", min_version=last.aggregate_version, timeout=30)
    expected = fold_view(SUMMARY, log_of(deployment, client.runtime))
    for order in set(sent):
        wait_until(
            lambda o=order: (
                get(deployment, f"/orders/views/order-summary/{o}")[1].get("state") == expected[o].state
            ),
            f"order-summary/{order}",
            60,
            0.3,
        )
    old_topic = client.runtime.topics.view("order-summary")
    admin = AdminClient(kafka_config(deployment.settings().bootstrap))
    wait_until(lambda: old_topic not in admin.list_topics(timeout=10).topics, f"{old_topic} deleted", 60, 0.3)


def test_replay_with_a_helper_process_serves_every_document_after_the_switch(
    deployment: Deployment, client: CommandClient
) -> None:
    # orders-by-customer is re-partitioned: the helper joins both of its groups, and the worker
    # restores the helper's partitions from the new version's topic once the helper has left
    some_orders(client, 16, "helper")
    settings = deployment.settings()
    groups = [
        client.runtime.groups.repartition("orders-by-customer", 2),
        client.runtime.groups.view("orders-by-customer", 2),
    ]
    admin = AdminClient(kafka_config(settings.bootstrap))
    members: set[str] = set()

    def seen(_: Any) -> None:
        for future in admin.describe_consumer_groups(groups).values():
            members.update(m.client_id for m in future.result(timeout=10).members)

    report = replay(
        settings,
        client.runtime,
        "orders-by-customer",
        on_progress=seen,
        max_lag=0,
        drop_after_s=3,
        processes=1,
    )
    assert report.new_version == 2 and report.helpers == 1
    assert "replay-helper-0" in members, members  # the helper was a member of the version's groups
    for future in admin.describe_consumer_groups(groups).values():  # and left before the switch
        assert all(not m.client_id.startswith("replay-helper-") for m in future.result(timeout=10).members)
    expected = fold_view(BY_CUSTOMER, log_of(deployment, client.runtime))
    assert len(expected) >= 3
    for customer, doc in expected.items():
        served_state(deployment, f"orders-by-customer/{customer}", doc.state)
        status, body = get(deployment, f"/orders/views/orders-by-customer/{customer}")
        assert status == 200 and body["version_served"] == 2


def test_rebuild_after_losing_rocksdb_and_the_changelog(
    deployment: Deployment, client: CommandClient
) -> None:
    settings = deployment.settings()
    runtime = client.runtime
    some_orders(client, 5, "rebuild")
    deployment.kill("w1")
    shutil.rmtree(deployment.data_dir / "w1", ignore_errors=True)
    admin = AdminClient(kafka_config(settings.bootstrap))
    admin.delete_topics([runtime.topics.changelog])[runtime.topics.changelog].result()
    wait_until(
        lambda: runtime.topics.changelog not in admin.list_topics(timeout=10).topics,
        "changelog deleted",
        60,
        0.3,
    )

    def recreatable() -> bool:  # the deletion is complete: the broker would create the topic again
        spec = runtime.topics.changelog_spec(settings.partitions)
        topic = NewTopic(spec.name, num_partitions=spec.partitions, replication_factor=1, config=spec.config)
        try:
            admin.create_topics([topic], validate_only=True)[spec.name].result()
        except KafkaException:
            return False
        return True

    wait_until(recreatable, "the changelog can be created again", 60, 0.3)
    report = rebuild(settings, runtime)
    assert report.aggregates > 5 and report.commands >= report.aggregates
    checked, mismatches = verify(settings, runtime)
    if mismatches:  # say where the table's records went, for a failure that cannot be rerun
        consumer = Consumer({**kafka_config(settings.bootstrap), "group.id": "diagnose"})
        marks = [
            consumer.get_watermark_offsets(TopicPartition(runtime.topics.changelog, p), timeout=10)
            for p in range(settings.partitions)
        ]
        consumer.close()
        pytest.fail(
            f"{len(mismatches)} of {checked} differ after rebuild {report}; "
            f"changelog watermarks {marks}: {mismatches[:3]}"
        )
    assert checked == report.aggregates
    deployment.start("w1")
    deployment.wait_healthy("w1")
    result = client.execute("rebuild-0", AddItem("zz", 1, 1), timeout=120)
    # the worker went on from the rebuilt state: the new event extends the log without a gap
    versions = [m.aggregate_version for _, m in log_of(deployment, runtime) if m.aggregate_id == "rebuild-0"]
    assert result.accepted and versions == list(range(1, result.aggregate_version + 1))
