"""The grants of a deployment's principals follow the names `streams.wire.topics` gives."""

from __future__ import annotations

from streams.wire.acls import Deployment, device_grants, worker_grants
from streams.wire.topics import ContextTopics, GroupNames, ProcessTopics, privacy_topic, secret_topic

DEPLOYMENT = Deployment(
    app_id="app",
    prefix="t1.",
    contexts=("orders",),
    processes=("settle",),
    raw_inputs=(("devices", "telemetry"),),
)


def _allowed(name: str, kind: str, operation: str, grants: list) -> bool:  # type: ignore[type-arg]
    return any(
        g.kind == kind
        and operation in g.operations
        and (name.startswith(g.name) if g.prefixed else name == g.name)
        for g in grants
    )


def test_a_worker_owns_its_contexts_topics_groups_and_transactional_ids_only() -> None:
    grants = worker_grants(DEPLOYMENT)
    orders = ContextTopics("orders", "t1.")
    groups = GroupNames("app", "t1.", "orders")
    for topic in (orders.commands, orders.events, orders.view("order-summary"), orders.window_input("x")):
        assert all(_allowed(topic, "topic", op, grants) for op in ("Read", "Write", "Create"))
    assert _allowed(groups.view("order-summary", 1), "group", "Read", grants)
    assert _allowed(groups.transactional_id("w1"), "transactional_id", "Write", grants)
    process = ProcessTopics("settle", "t1.")
    assert _allowed(process.timers, "topic", "Write", grants)
    assert _allowed(
        GroupNames("app", "t1.", "settle").process_transactional_id("w1"), "transactional_id", "Write", grants
    )
    assert _allowed(secret_topic("t1.", "app"), "topic", "Read", grants)
    assert _allowed(privacy_topic("t1."), "topic", "Write", grants)
    # another context, another deployment's prefix, another app's transactions: nothing
    assert not _allowed(ContextTopics("wallet", "t1.").commands, "topic", "Write", grants)
    assert not _allowed(ContextTopics("orders", "t2.").commands, "topic", "Read", grants)
    assert not _allowed(ContextTopics("orders", "").commands, "topic", "Read", grants)
    assert not _allowed(
        GroupNames("other", "t1.", "orders").transactional_id("w1"), "transactional_id", "Write", grants
    )
    assert not any(op in g.operations for g in grants for op in ("Delete", "Alter", "All"))


def test_a_device_may_only_produce_to_the_raw_inputs() -> None:
    grants = device_grants(DEPLOYMENT)
    devices = ContextTopics("devices", "t1.")
    assert _allowed(devices.window_input("telemetry"), "topic", "Write", grants)
    assert not _allowed(devices.window_input("telemetry"), "topic", "Read", grants)
    assert not _allowed(devices.commands, "topic", "Write", grants)
    assert {g.kind for g in grants} == {"topic"} and not any(g.prefixed for g in grants)
