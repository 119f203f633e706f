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
from streams.core.clock import iso_to_ms
from streams.core.processes import DeadlineReached, deadline_id, process_command_id
from streams.kafka import clients
from streams.kafka.readers import read_partition
from streams.processes.inspect import as_json, committed_instance
from streams.processes.records import process_codec
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


def records(deployment: Deployment, topic: str, key: str, *, single: bool = False) -> list[dict[str, str]]:
    """The headers of every committed record of `key` on `topic` (`single`: a one-partition topic)."""
    settings = deployment.settings()
    partition = 0 if single else partition_for(key.encode(), settings.partitions)
    found = read_partition(settings, topic, partition)
    return [h.as_dict(m.headers()) for m in found if m.key() == key.encode()]


def events(deployment: Deployment, order_id: str) -> list[str]:
    topics = ContextTopics("orders", deployment.settings().topic_prefix)
    return [r[h.EVENT_TYPE] for r in records(deployment, topics.events, order_id)]


def placed_at(deployment: Deployment, order_id: str) -> int:
    """When the order was placed (its first event's `occurred_at`), epoch ms."""
    topics = ContextTopics("orders", deployment.settings().topic_prefix)
    return iso_to_ms(records(deployment, topics.events, order_id)[0][h.OCCURRED_AT])


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
    assert events(deployment, "pm-late") == ["OrderPlaced", "OrderCancelled"]
    assert cancels_sent(deployment, "pm-late") == 1
    prefix = deployment.settings().topic_prefix
    timers = records(deployment, ProcessTopics(process.name, prefix).timers, "pm-late")
    assert len(timers) == 1  # the deadline was emitted once

    def cancelled() -> dict[str, object] | None:  # the OrderCancelled it caused, and its result
        found = committed_instance(deployment.settings(), process.name, "pm-late")
        shown = None if found is None else as_json(found)
        done = {"status": "cancelled", "cancel_outcome": "accepted"}  # the result of its cancel came back
        return shown if shown is not None and shown["state"] == done else None

    instance = wait_until(cancelled, "the instance to see its order cancelled", timeout=30)
    assert instance["deadlines"] == []
    assert [c["status"] for c in instance["sent"]] == ["accepted"]
    assert [c["command_id"] for c in instance["sent"]] == [
        process_command_id(process.name, "pm-late", "cancel")
    ]


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


def test_a_deadline_record_forged_by_a_foreign_producer_is_dead_lettered_not_obeyed(
    deployment: Deployment, client: CommandClient
) -> None:
    settings = deployment.settings()
    topics = ProcessTopics(process.name, settings.topic_prefix)
    client.execute("pm-forged", PlaceOrder("c-1", "EUR"), timeout=60)
    due_ms = placed_at(deployment, "pm-forged") + TIMEOUT_MS
    # the id is deterministic, so guessable: what refuses the record is that the stage has not
    # emitted it (or, arriving after the real one, that it was already handled)
    guessed = deadline_id(process.name, "pm-forged", "confirm-by", 1)
    forged = DeadlineReached(process.name, "pm-forged", "confirm-by", guessed, due_ms)
    producer = clients.producer(settings)
    producer.produce(topics.timers, process_codec(settings).encode(forged), b"pm-forged")
    assert producer.flush(30) == 0
    wait_until(
        lambda: records(deployment, topics.dlq, "pm-forged", single=True),
        "the forged record's letter",
        timeout=60,
    )
    [letter] = records(deployment, topics.dlq, "pm-forged", single=True)
    assert letter[h.DLQ_REASON] in ("deadline_not_emitted", "unknown_deadline"), letter
    wait_until(lambda: "OrderCancelled" in events(deployment, "pm-forged"), "the real deadline", timeout=60)
    assert cancels_sent(deployment, "pm-forged") == 1


def test_a_deadline_due_while_the_worker_is_down_fires_after_it_restarts(
    deployment: Deployment, client: CommandClient
) -> None:
    client.execute("pm-restart", PlaceOrder("c-1", "EUR"), timeout=60)
    deployment.kill("w1", signal.SIGKILL)
    due_ms = placed_at(deployment, "pm-restart") + TIMEOUT_MS
    wait_until(lambda: time.time() * 1000 > due_ms + 500, "the deadline to fall due while nothing runs")
    assert "OrderCancelled" not in events(deployment, "pm-restart")
    deployment.start("w1")
    deployment.wait_healthy("w1")
    wait_until(
        lambda: "OrderCancelled" in events(deployment, "pm-restart"), "the deadline after restart", timeout=90
    )
    assert cancels_sent(deployment, "pm-restart") == 1
    assert client.execute("pm-restart", CancelOrder("again"), timeout=60).status == "rejected"
