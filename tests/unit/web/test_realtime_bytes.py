"""Real-time memory is bounded in bytes: the ring, each client's mailbox, and each frame (a frame
over the cap is sent as a `changed` frame naming what changed and where to fetch it)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from confluent_kafka import Message

from streams.contexts import orders
from streams.kafka.runtime import ContextRuntime
from streams.web.realtime.fanout import Fanout, Subscriber
from streams.web.realtime.mailbox import Mailbox, SlowClient
from streams.web.realtime.records import FeedRecord, FrameDecoder, changed_frame, dumps
from streams.web.realtime.subscription import Subscription
from streams.wire import headers as h

SECRET = b"k" * 32
EVENTS = "t.orders.events"


def record(offset: int, pad: int, partition: int = 0) -> FeedRecord:
    frame = {"type": "event", "partition": partition, "offset": offset, "aggregate_id": "a", "pad": "x" * pad}
    return FeedRecord(EVENTS, partition, offset, "event", "a", "a", "Order", "ItemAdded", dumps(frame))


def subscriber(mailbox: Mailbox) -> Subscriber:
    return Subscriber(Subscription("orders"), (EVENTS,), ((EVENTS, 0),), "websocket", mailbox, SECRET)


def test_the_ring_keeps_to_its_byte_budget_and_older_positions_catch_up_from_kafka() -> None:
    fanout = Fanout(EVENTS, SECRET, 4096, ring_bytes=10_000)
    fanout.add_partitions({(EVENTS, 0): 0})
    fanout.dispatch([record(i, 1000) for i in range(50)])
    assert 9_000 <= fanout.ring_bytes <= 10_000
    assert fanout.ring_start[(EVENTS, 0)] > 40  # only the last few records are kept
    late = subscriber(Mailbox(100))
    late.pos = {(EVENTS, 0): 10}
    assert fanout.join(late).from_kafka == {(EVENTS, 0): fanout.ring_start[(EVENTS, 0)]}


def test_a_mailbox_keeps_to_its_byte_budget_but_lets_one_large_frame_through() -> None:
    box = Mailbox(1000, max_bytes=1000)
    assert all(box.offer("x" * 300) for _ in range(3)) and not box.offer("x" * 300)
    assert box.bytes == 900 and box.free_bytes() == 100

    async def drain() -> None:
        for _ in range(3):
            await box.get()

    asyncio.run(drain())
    assert box.bytes == 0 and box.offer("y" * 5000) and not box.offer("z")


def test_a_full_mailbox_by_bytes_makes_the_catch_up_wait_then_drops_a_slow_client() -> None:
    async def scenario() -> None:
        box = Mailbox(1000, max_bytes=1000)
        box.offer("x" * 900)
        with pytest.raises(SlowClient):
            await box.put("y" * 200, grace_s=0.05)
        waiting = asyncio.ensure_future(box.put("y" * 200, grace_s=5))
        await asyncio.sleep(0)
        assert not waiting.done()
        await box.get()
        await waiting
        assert box.bytes == 200

    asyncio.run(scenario())


def test_a_live_client_whose_mailbox_is_full_by_bytes_is_detached_at_the_record_it_missed() -> None:
    fanout = Fanout(EVENTS, SECRET, 4096)
    fanout.add_partitions({(EVENTS, 0): 0})
    sub = subscriber(Mailbox(1000, max_bytes=3000))
    detached: list[int] = []
    sub.on_detach = lambda s: detached.append(s.pos[(EVENTS, 0)])
    fanout.join_now(sub)
    fanout.dispatch([record(i, 1000) for i in range(5)])
    assert len(sub.mailbox) == 2 and detached == [2]


def test_a_frame_over_the_cap_becomes_a_changed_frame_with_where_to_fetch_it() -> None:
    runtime = ContextRuntime.offline(orders.context, prefix="t.")
    decoder = FrameDecoder(runtime, cast(Any, None), "t.", max_frame_bytes=2000)
    headers = h.event_headers(
        event_type="ItemAdded", schema_version=runtime.codec.version_of(orders.ItemAdded),
        aggregate_type="Order", aggregate_id="o/1", aggregate_version=7, command_id="c",
        correlation_id="", occurred_at="2026-01-01T00:00:00Z",
    )  # fmt: skip
    small = orders.ItemAdded(sku="s", quantity=1, unit_price_minor=1)
    big = orders.ItemAdded(sku="s" * 5000, quantity=1, unit_price_minor=1)

    def message(body: Any, offset: int) -> Message:
        value = runtime.codec.encode(body)
        return Message(topic=EVENTS, partition=0, offset=offset, key=b"o/1", value=value, headers=headers)

    assert json.loads(decoder.record(message(small, 1)).body)["type"] == "event"
    changed = decoder.record(message(big, 2))
    frame = json.loads(changed.body)
    assert frame["type"] == "changed" and frame["of"] == "event" and "data" not in frame
    assert (frame["aggregate_id"], frame["aggregate_version"], frame["offset"]) == ("o/1", 7, 2)
    assert frame["bytes"] > 5000 and len(changed.body) < 2000
    assert frame["fetch"] == "/orders/aggregates/o%2F1/events?from_version=7&limit=1"
    assert changed.sse("tok").startswith(b"id: tok\nevent: changed\n") and decoder.elided == 1
    assert changed.kind == "event"  # the subscription filters see it as the record it stands for


def test_a_changed_view_frame_names_the_document() -> None:
    frame = {
        "type": "view",
        "context": "orders",
        "view": "order-summary.v2",
        "topic": "x",
        "partition": 1,
        "offset": 9,
        "key": "o 1",
        "deleted": False,
        "document": {"big": 1},
        "committed_ms": 5,
    }
    changed = changed_frame(frame, 10**6)
    assert changed["fetch"] == "/orders/views/order-summary/o%201" and "document" not in changed
    assert changed["of"] == "view" and changed["view"] == "order-summary.v2" and changed["bytes"] == 10**6


def test_a_view_frame_never_carries_the_personal_fields_its_view_declares() -> None:
    runtime = ContextRuntime.offline(orders.context, prefix="t.")
    state = {"customer_id": "c-A", "customer_name": "Ada", "customer_email": "ada@example.org", "n": 1}

    class Decoder:
        def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
            return "streams.ReadModelDocument", {"entity_id": "o-1", "state": json.dumps(state)}

    decoder = FrameDecoder(runtime, cast(Any, Decoder()), "t.")
    for topic, erased in (("t.orders.order-summary.v1", True), ("t.orders.orders-by-customer.v1", False)):
        frame = json.loads(
            decoder.record(Message(topic=topic, partition=0, offset=1, key=b"o-1", value=b"x")).body
        )
        assert frame["type"] == "view" and frame["document"]["state"]["customer_id"] == "c-A"
        assert ("Ada" not in json.dumps(frame)) is erased  # orders-by-customer declares nothing
