"""A process manager in a real worker (tests/processes/order_timeout.py over orders): a deadline
fires on the wall clock and its command is sent exactly once, a cancelled deadline never fires,
and a deadline due while the worker is down fires after it restarts."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from streams.client import CommandClient
from streams.contexts.orders import AddItem, CancelOrder, ConfirmOrder, PlaceOrder
from streams.core.processes import process_command_id
from streams.kafka.readers import read_partition
from streams.wire import headers as h
from streams.wire.topics import ContextTopics, ProcessTopics, partition_for
from tests.integration.workers import Deployment, module_deployment, wait_until, warmed_client
from tests.processes.order_timeout import process

TIMEOUT_MS = 4000
deployment = module_deployment(
    "pm", STREAMS_CONTEXTS="orders", STREAMS_SINKS="0", ORDER_TIMEOUT_MS=str(TIMEOUT_MS),
    STREAMS_PROCESS_MODULES="tests.processes.order_timeout",
)  # fmt: skip


@pytest.fixture(scope="module")
def client(deployment: Deployment) -> Iterator[CommandClient]:
    with warmed_client(deployment.settings()) as warmed:
        yield warmed


def records(deployment: Deployment, topic: str, key: str) -> list[dict[str, str]]:
    """The headers of every committed record of `key` on `topic`."""
    settings = deployment.settings()
    found = read_partition(settings, topic, partition_for(key.encode(), settings.partitions))
    return [h.as_dict(m.headers()) for m in found if m.key() == key.encode()]


def events(deployment: Deployment, order_id: str) -> list[str]:
    topics = ContextTopics("orders", deployment.settings().topic_prefix)
    return [r[h.EVENT_TYPE] for r in records(deployment, topics.events, order_id)]


def cancels_sent(deployment: Deployment, order_id: str) -> int:
    """How many records of the process's cancel command the orders command topic holds."""
    topics = ContextTopics("orders", deployment.settings().topic_prefix)
    wanted = process_command_id(process.name, order_id, "cancel")
    return sum(1 for r in records(deployment, topics.commands, order_id) if r.get(h.COMMAND_ID) == wanted)


def test_an_unconfirmed_order_is_cancelled_once_by_its_deadline(
    deployment: Deployment, client: CommandClient
) -> None:
    client.execute("pm-late", PlaceOrder("c-1", "EUR"), timeout=60)
    wait_until(lambda: "OrderCancelled" in events(deployment, "pm-late"), "the deadline's cancel", timeout=60)
    time.sleep(1)  # anything sent twice would be there by now
    assert events(deployment, "pm-late") == ["OrderPlaced", "OrderCancelled"]
    assert cancels_sent(deployment, "pm-late") == 1
    prefix = deployment.settings().topic_prefix
    timers = records(deployment, ProcessTopics(process.name, prefix).timers, "pm-late")
    assert len(timers) == 1  # the deadline was emitted once


def test_a_confirmed_order_keeps_its_deadline_cancelled(
    deployment: Deployment, client: CommandClient
) -> None:
    client.execute("pm-kept", PlaceOrder("c-1", "EUR"), timeout=60)
    client.execute("pm-kept", AddItem("sku-1", 1, 100), timeout=60)
    assert client.execute("pm-kept", ConfirmOrder(), timeout=60).status == "accepted"
    client.execute("pm-after", PlaceOrder("c-1", "EUR"), timeout=60)  # its deadline is later
    wait_until(lambda: "OrderCancelled" in events(deployment, "pm-after"), "the later deadline", timeout=60)
    assert events(deployment, "pm-kept") == ["OrderPlaced", "ItemAdded", "OrderConfirmed"]
    assert cancels_sent(deployment, "pm-kept") == 0
    prefix = deployment.settings().topic_prefix
    assert records(deployment, ProcessTopics(process.name, prefix).timers, "pm-kept") == []


def test_a_deadline_due_while_the_worker_is_down_fires_after_it_restarts(
    deployment: Deployment, client: CommandClient
) -> None:
    client.execute("pm-restart", PlaceOrder("c-1", "EUR"), timeout=60)
    deployment.kill("w1", signal.SIGKILL)
    time.sleep(TIMEOUT_MS / 1000 + 1)  # the deadline falls due while nothing runs
    assert "OrderCancelled" not in events(deployment, "pm-restart")
    deployment.start("w1")
    deployment.wait_healthy("w1")
    wait_until(
        lambda: "OrderCancelled" in events(deployment, "pm-restart"), "the deadline after restart", timeout=90
    )
    assert cancels_sent(deployment, "pm-restart") == 1
    assert client.execute("pm-restart", CancelOrder("again"), timeout=60).status == "rejected"
