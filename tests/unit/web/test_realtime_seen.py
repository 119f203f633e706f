"""What a worker's real-time ring remembers of a record, for `streams trace`: the frame's
publish time and delivered count while the ring holds it, and why not otherwise."""

from __future__ import annotations

import pytest

from streams.web.realtime.fanout import Fanout, Subscriber
from streams.web.realtime.mailbox import Mailbox
from streams.web.realtime.records import FeedRecord, dumps
from streams.web.realtime.seen import MAX_POSITIONS, parse_positions, seen
from streams.web.realtime.subscription import Subscription

SECRET = b"k" * 32
EVENTS = "orders.events"


def record(offset: int, aggregate: str = "a") -> FeedRecord:
    body = dumps({"type": "event", "partition": 0, "offset": offset, "aggregate_id": aggregate})
    return FeedRecord(EVENTS, 0, offset, "event", aggregate, aggregate, "Order", "ItemAdded", body)


def subscriber(**filters: str) -> Subscriber:
    subscription = Subscription("orders", **filters)
    return Subscriber(subscription, (EVENTS,), ((EVENTS, 0),), "sse", Mailbox(100), SECRET)


def test_a_dispatched_frame_keeps_its_publish_time_and_how_many_subscribers_it_reached() -> None:
    fanout = Fanout(EVENTS, SECRET, 3)
    fanout.add_partitions({(EVENTS, 0): 10})
    for sub in (subscriber(), subscriber(), subscriber(aggregate_id="b")):
        fanout.join_now(sub)
    fanout.dispatch([record(10), record(12)])  # 11: a transaction marker
    first = seen(fanout, EVENTS, 0, 10)
    assert first.status == "in_ring" and first.delivered == 2
    assert first.published_ms is not None and first.published_ms > 1_700_000_000_000
    assert seen(fanout, EVENTS, 0, 11).status == "no_record"
    assert seen(fanout, EVENTS, 0, 13).status == "not_yet_read"
    assert seen(fanout, EVENTS, 0, 9).status == "out_of_ring"  # before the feed started
    assert seen(fanout, EVENTS, 1, 0).status == "not_followed"
    assert seen(None, EVENTS, 0, 10).status == "no_feed"
    fanout.dispatch([record(13), record(14)])  # the ring holds 3: 10 leaves it
    assert seen(fanout, EVENTS, 0, 10).status == "out_of_ring"
    assert seen(fanout, EVENTS, 0, 14).as_json()["delivered"] == 2


def test_a_subscriber_catching_up_from_the_ring_counts_as_delivered() -> None:
    fanout = Fanout(EVENTS, SECRET, 10)
    fanout.add_partitions({(EVENTS, 0): 0})
    fanout.dispatch([record(0)])
    assert seen(fanout, EVENTS, 0, 0).delivered == 0
    late = subscriber()
    late.pos = {(EVENTS, 0): 0}
    assert fanout.join(late).joined
    assert seen(fanout, EVENTS, 0, 0).delivered == 1


def test_positions_are_topic_partition_offset_comma_separated() -> None:
    assert parse_positions("orders.events:0:5,orders.order-summary:2:7") == [
        ("orders.events", 0, 5), ("orders.order-summary", 2, 7),
    ]  # fmt: skip
    for bad in ("", "orders.events:0", "orders.events:x:1", ":0:1", "t:-1:0",
                ",".join(["t:0:1"] * (MAX_POSITIONS + 1))):  # fmt: skip
        with pytest.raises(ValueError):
            parse_positions(bad)
