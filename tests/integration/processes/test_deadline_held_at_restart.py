"""After a restart, a due deadline waits until the process stage has read its inputs: an
`OrderConfirmed` written while the stage was down cancels the deadline it finds due at restart
(never emitted), and a deadline nothing cancelled fires after the restart as before.

Two workers host orders (tests/processes/order_timeout.py): `w1` without processes, so orders
keeps answering while `w2`, the one with the process, is killed with SIGKILL."""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.client import CommandClient
from streams.contexts.orders import AddItem, ConfirmOrder, PlaceOrder
from streams.processes.inspect import as_json, committed_instance
from streams.wire.topics import ProcessTopics
from tests.integration.processes.test_order_timeout import cancels_sent, events, placed_at, records
from tests.integration.workers import Deployment, wait_until, warmed_client
from tests.processes.order_timeout import process

TIMEOUT_MS = 25_000  # room for the kill, the orders group's rebalance and the confirm before it is due
PROCESS_WORKER = "w2"


@pytest.fixture(scope="module")
def deployment(
    stack: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Deployment:
    env = {
        "STREAMS_CONTEXTS": "orders", "STREAMS_SINKS": "0", "ORDER_TIMEOUT_MS": str(TIMEOUT_MS),
        "STREAMS_PROCESS_MODULES": "tests.processes.order_timeout",
    }  # fmt: skip
    dep = Deployment(
        prefix=f"ph{uuid.uuid4().hex[:8]}", data_dir=Path(tmp_path_factory.mktemp("w")), extra_env=env
    )
    request.addfinalizer(dep.stop_all)
    for worker, processes in (("w1", "0"), (PROCESS_WORKER, "1")):  # w1 first: it runs no process
        dep.extra_env["STREAMS_PROCESSES"] = processes
        dep.start(worker)
        dep.wait_healthy(worker)
    return dep


@pytest.fixture(scope="module")
def client(deployment: Deployment) -> Iterator[CommandClient]:
    with warmed_client(deployment.settings()) as warmed:
        yield warmed


def instance(deployment: Deployment, order_id: str) -> dict[str, Any] | None:
    found = committed_instance(deployment.settings(), process.name, order_id)
    return None if found is None else as_json(found)


def test_a_deadline_cancelled_while_the_stage_was_down_is_not_fired_at_restart(
    deployment: Deployment, client: CommandClient
) -> None:
    client.execute("ph-kept", PlaceOrder("c-1", "EUR"), timeout=60)
    client.execute("ph-free", PlaceOrder("c-1", "EUR"), timeout=60)
    for order_id in ("ph-kept", "ph-free"):
        wait_until(
            lambda o=order_id: (i := instance(deployment, o)) is not None and i["deadlines"],
            f"{order_id}'s deadline scheduled",
            timeout=60,
        )
    deployment.kill(PROCESS_WORKER, signal.SIGKILL)
    client.execute("ph-kept", AddItem("sku-1", 1, 100), timeout=60)  # w1 answers once it owns orders
    assert client.execute("ph-kept", ConfirmOrder(), timeout=60).status == "accepted"
    due_ms = max(placed_at(deployment, o) for o in ("ph-kept", "ph-free")) + TIMEOUT_MS
    assert time.time() * 1000 < due_ms, "confirmed too late for the test's point"
    wait_until(lambda: time.time() * 1000 > due_ms + 1000, "both deadlines due while the stage is down", 60)
    deployment.start(PROCESS_WORKER)
    deployment.wait_healthy(PROCESS_WORKER)
    wait_until(
        lambda: "OrderCancelled" in events(deployment, "ph-free"), "the free deadline after restart", 90
    )
    kept = wait_until(
        lambda: (
            (i := instance(deployment, "ph-kept")) is not None and i["state"]["status"] == "confirmed" and i
        ),
        "the stage to read the confirm",
        timeout=60,
    )
    assert kept["deadlines"] == []
    timers = ProcessTopics(process.name, deployment.settings().topic_prefix).timers
    assert records(deployment, timers, "ph-kept") == []  # held, then cancelled: never emitted
    assert cancels_sent(deployment, "ph-kept") == 0
    assert events(deployment, "ph-kept") == ["OrderPlaced", "ItemAdded", "OrderConfirmed"]
    assert len(records(deployment, timers, "ph-free")) == 1 and cancels_sent(deployment, "ph-free") == 1
