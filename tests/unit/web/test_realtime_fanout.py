"""The real-time fanout without Kafka: filters, shared tokens, detaching a full client, and
joining the live feed from the ring without a gap or a repeat (property-based)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.web.realtime.fanout import Closed, Fanout, Subscriber
from streams.web.realtime.mailbox import Mailbox, Signal, SlowClient
from streams.web.realtime.records import FeedRecord, dumps
from streams.web.realtime.subscription import Subscription, decode_token

SECRET = b"k" * 32
EVENTS = "orders.events"
PARTITIONS = 2


def record(partition: int, offset: int, aggregate: str, event_type: str = "ItemAdded") -> FeedRecord:
    frame = {"type": "event", "partition": partition, "offset": offset, "aggregate_id": aggregate}
    return FeedRecord(
        EVENTS, partition, offset, "event", aggregate, aggregate, "Order", event_type, dumps(frame)
    )


def subscriber(size: int = 100, transport: str = "websocket", **filters: Any) -> Subscriber:
    sub = Subscription("orders", **filters)
    tps = tuple((EVENTS, p) for p in range(PARTITIONS))
    return Subscriber(sub, (EVENTS,), tps, transport, Mailbox(size), SECRET)


def fanout(ring: int = 100) -> Fanout:
    f = Fanout(EVENTS, SECRET, ring)
    f.add_partitions({(EVENTS, p): 0 for p in range(PARTITIONS)})
    return f


def frames(sub: Subscriber) -> list[dict[str, Any]]:
    out = []
    while len(sub.mailbox):
        item = sub.mailbox._items.popleft()
        if isinstance(item, str):
            out.append(json.loads(item))
    return out


def test_a_record_reaches_the_subscribers_whose_filters_match_with_the_token_after_it() -> None:
    f = fanout()
    everyone, one, placed = subscriber(), subscriber(aggregate_id="a"), subscriber(event_type="OrderPlaced")
    for sub in (everyone, one, placed):
        f.join_now(sub)
    f.dispatch([record(0, 0, "a", "OrderPlaced"), record(1, 0, "b"), record(0, 1, "a")])
    assert [(x["partition"], x["offset"]) for x in frames(everyone)] == [(0, 0), (1, 0), (0, 1)]
    got = frames(one)
    assert [x["offset"] for x in got] == [0, 1]
    # records the filter dropped (b at 1:0) still advance the token
    assert decode_token(got[-1]["token"], SECRET) == {EVENTS: {0: 2, 1: 1}}
    assert [x["aggregate_id"] for x in frames(placed)] == ["a"]


def test_subscribers_of_the_same_topics_share_one_rendered_frame() -> None:
    f = fanout()
    a, b = subscriber(), subscriber()
    f.join_now(a)
    f.join_now(b)
    f.dispatch([record(0, 0, "x")])
    assert a.mailbox._items[0] is b.mailbox._items[0]


def test_sse_frames_carry_the_token_as_their_id() -> None:
    f = fanout()
    sub = subscriber(transport="sse")
    f.join_now(sub)
    f.dispatch([record(0, 0, "x")])
    text = sub.mailbox._items[0]
    assert isinstance(text, bytes)
    head, event, data = text.decode().strip().split("\n")
    assert event == "event: event" and head == f"id: {json.loads(data[6:])['token']}"


def test_a_full_subscriber_leaves_the_feed_at_the_record_it_missed_and_rejoins_from_the_ring() -> None:
    f = fanout()
    slow, other = subscriber(size=2), subscriber()
    detached: list[Subscriber] = []
    slow.on_detach = detached.append
    f.join_now(slow)
    f.join_now(other)
    f.dispatch([record(0, i, "a") for i in range(3)])
    assert detached == [slow] and not slow.live
    assert slow.pos == {(EVENTS, 0): 2, (EVENTS, 1): 0}
    first = frames(slow)
    assert [x["offset"] for x in first] == [0, 1]
    f.dispatch([record(1, 0, "b")])  # not offered to a detached subscriber
    step = f.join(slow)
    assert step.joined and slow.live
    rest = frames(slow)
    f.dispatch([record(0, 3, "a")])
    rest += frames(slow)
    got = [(x["partition"], x["offset"]) for x in first + rest]
    assert got == [(0, 0), (0, 1), (0, 2), (1, 0), (0, 3)]
    assert decode_token(rest[-1]["token"], SECRET) == {EVENTS: {0: 4, 1: 1}}
    assert len(frames(other)) == 5


def test_a_position_older_than_the_ring_is_read_from_kafka_and_one_ahead_waits() -> None:
    f = fanout(ring=3)
    f.dispatch([record(0, i, "a") for i in range(6)])
    assert f.ring_start[(EVENTS, 0)] == 3
    sub = subscriber()
    sub.pos = {(EVENTS, 0): 1, (EVENTS, 1): 0}
    assert f.join(sub).from_kafka == {(EVENTS, 0): 3}
    sub.pos = {(EVENTS, 0): 9, (EVENTS, 1): 0}
    assert f.join(sub).wait


def test_a_join_larger_than_the_free_buffer_hands_the_records_over_instead() -> None:
    f = fanout()
    f.dispatch([record(0, i, "a") for i in range(10)])
    sub = subscriber(size=4)
    sub.pos = {(EVENTS, 0): 0, (EVENTS, 1): 0}
    step = f.join(sub)
    assert not step.joined and [r.offset for r in step.records] == list(range(10))
    assert not len(sub.mailbox)


def test_leaving_forgets_the_subscriber_and_its_index_entries() -> None:
    f = fanout()
    sub = subscriber(aggregate_id="a")
    f.join_now(sub)
    assert f.live_count() == 1
    f.leave(sub)
    f.dispatch([record(0, 0, "a")])
    assert f.live_count() == 0 and not len(sub.mailbox) and not f._by_aggregate


def test_a_record_read_twice_is_dispatched_once() -> None:
    f = fanout()
    sub = subscriber()
    f.join_now(sub)
    f.dispatch([record(0, 0, "a"), record(0, 1, "a")])
    f.dispatch([record(0, 1, "a"), record(0, 2, "a")])  # a restarted reader re-reads offset 1
    assert [x["offset"] for x in frames(sub)] == [0, 1, 2]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, PARTITIONS - 1), st.sampled_from("abc")), min_size=1, max_size=60),
    st.lists(st.integers(0, 60), min_size=1, max_size=5),
    st.integers(1, 8),
    st.sampled_from(["", "a"]),
)
def test_a_subscriber_that_leaves_and_rejoins_gets_every_matching_record_once_in_order(
    log: list[tuple[int, str]], cuts: list[int], size: int, aggregate: str
) -> None:
    """However the live feed and a client's buffer interleave (it fills up, the client reads
    some frames, it catches up from the ring and joins again), the client receives exactly the
    matching records, in per-partition order, once each."""
    f = fanout(ring=1000)
    sub = subscriber(size=size, aggregate_id=aggregate)
    sub.on_detach = lambda _s: None
    f.join_now(sub)
    offsets = dict.fromkeys(range(PARTITIONS), 0)
    records = []
    for partition, agg in log:
        records.append(record(partition, offsets[partition], agg))
        offsets[partition] += 1
    received: list[dict[str, Any]] = []
    cut_points = sorted({min(c, len(records)) for c in cuts} | {len(records)})
    done = 0
    for cut in cut_points:
        f.dispatch(records[done:cut])
        done = cut
        received += frames(sub)  # the client reads what is buffered
        while not sub.live:  # it fell behind: catch up from the ring, reading as it goes
            step = f.join(sub)
            for r in step.records:  # what the catch-up task delivers with waits
                if r.offset >= sub.pos[r.tp]:
                    sub.pos[r.tp] = r.offset + 1
                    if sub.accepts(r):
                        sub.mailbox.offer(sub.render(r, sub.token(sub.pos)))
                        received += frames(sub)
            received += frames(sub)
    expected = [(r.partition, r.offset) for r in records if not aggregate or r.aggregate_id == aggregate]
    got = [(x["partition"], x["offset"]) for x in received]
    for p in range(PARTITIONS):
        assert [o for q, o in got if q == p] == [o for q, o in expected if q == p]
    assert sorted(got) == sorted(expected)
    previous = dict.fromkeys(range(PARTITIONS), 0)
    for frame in received:  # each token is the position right after its frame, never going back
        token = decode_token(frame["token"], SECRET)[EVENTS]
        assert token[frame["partition"]] == frame["offset"] + 1
        assert all(token[p] >= previous[p] for p in previous)
        previous = token


def test_the_mailbox_waits_for_room_then_gives_up_and_closes_with_a_signal() -> None:
    async def scenario() -> None:
        box = Mailbox(1)
        assert box.offer("a") and not box.offer("b")
        reader = asyncio.ensure_future(asyncio.sleep(0.05))
        await reader
        taker = asyncio.ensure_future(box.get())
        await box.put("b", grace_s=1)  # room once the reader took "a"
        assert await taker == "a"
        try:
            await box.put("c", grace_s=0.05)
            raise AssertionError("no SlowClient")
        except SlowClient:
            pass
        box.close()
        assert await box.get() is Signal.CLOSE

    asyncio.run(scenario())


def test_closing_a_subscriber_drops_its_frames() -> None:
    sub = subscriber()
    sub.mailbox.offer("x")
    sub.close(Closed.SLOW)
    assert sub.closed is Closed.SLOW and list(sub.mailbox._items) == [Signal.CLOSE]


def test_a_waiting_reader_gets_frames_written_directly_and_a_busy_one_queued() -> None:
    written: list[object] = []

    async def scenario() -> None:
        box = Mailbox(10)
        box.direct = lambda item: written.append(item) or True
        assert box.offer("a") and written == [] and len(box) == 1  # nobody waiting: queued
        assert await box.get() == "a"
        reader = asyncio.ensure_future(box.get())
        await asyncio.sleep(0)  # the reader waits now
        assert box.offer("b") and written == ["b"] and len(box) == 0  # straight to the connection
        box.direct = lambda item: False  # the connection is backed up: queued, reader woken
        assert box.offer("c") and await reader == "c"

    asyncio.run(scenario())
