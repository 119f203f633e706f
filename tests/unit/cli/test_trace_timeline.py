"""`streams trace`'s timeline: each hop's time after the command, and after the hop it follows."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from streams.cli import trace_frames
from streams.cli.trace import Hop, Timeline, show


def test_each_hop_is_timed_from_the_command_and_from_the_hop_it_follows() -> None:
    timeline = Timeline("c-1", "corr-1")
    timeline.hops = [
        Hop("command", "x.commands", 1, 10, 1_000, "PlaceOrder for o-1"),
        Hop("result", "x.command-results", 1, 4, 1_030, "accepted, version 2", after="command"),
        Hop("event", "x.events", 1, 7, 1_020, "OrderPlaced v1", after="command"),
        Hop("event", "x.events", 1, 8, 1_021, "ItemAdded v2", after="command"),
        Hop("document", "x.order-summary", 1, 3, 1_100, "Order 'o-1'", after="event"),
    ]
    result, event, document = timeline.hops[1], timeline.hops[3], timeline.hops[4]
    assert timeline.since_command_ms(result) == 30 and timeline.took_ms(result) == 30
    assert timeline.took_ms(event) == 21
    assert timeline.since_command_ms(document) == 100 and timeline.took_ms(document) == 79
    assert timeline.took_ms(timeline.hops[0]) is None
    console = Console(width=140, record=True)
    show(timeline, console)
    text = console.export_text()
    assert "correlation corr-1" in text and "x.order-summary[1]@3" in text and "79" in text


def test_without_the_command_record_hops_have_no_time_after_it() -> None:
    timeline = Timeline("c-2")
    timeline.hops = [Hop("result", "x.command-results", 0, 1, 5, "accepted", after="command")]
    assert timeline.since_command_ms(timeline.hops[0]) is None and timeline.took_ms(timeline.hops[0]) is None


def test_a_postgresql_row_is_shown_untimed() -> None:
    timeline = Timeline("c-3")
    timeline.hops = [
        Hop("command", "x.commands", 0, 1, 1_000, "PlaceOrder for o-3"),
        Hop("event", "x.events", 0, 2, 1_010, "OrderPlaced v1", after="command"),
        Hop("sink record", "x.events-sink", 2, 5, 1_050, "EventStore row e", after="event"),
        Hop("sink row", "public.EventStore", -1, -1, None, "present", after="sink record"),
    ]
    record, row = timeline.hops[2], timeline.hops[3]
    assert timeline.took_ms(record) == 40 and timeline.since_command_ms(record) == 50
    assert timeline.took_ms(row) is None and timeline.since_command_ms(row) is None
    console = Console(width=140, record=True)
    show(timeline, console)
    assert "public.EventStore " in console.export_text()


def test_real_time_frames_are_timed_after_their_own_record_or_shown_untimed_with_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    timeline = Timeline("c-4")
    timeline.hops = [
        Hop("command", "x.events", 0, 1, 1_000, "PlaceOrder for o-4"),
        Hop("event", "x.events", 0, 2, 1_010, "OrderPlaced v1", after="command"),
        Hop("event", "x.events", 0, 3, 1_050, "ItemAdded v2", after="command"),
        Hop("document", "x.order-summary", 1, 9, 1_100, "Order 'o-4'", after="event"),
    ]
    asked: list[str] = []

    def answer(url: str, path: str, token: str, timeout: float = 10.0) -> bytes:
        asked.append(path)
        frames = [
            {"status": "in_ring", "published_ms": 1_030, "delivered": 1},
            {"status": "in_ring", "published_ms": 1_060, "delivered": 2},
            {"status": "not_followed", "published_ms": None, "delivered": None},
        ]
        return json.dumps({"worker": "http://w1", "frames": frames}).encode()

    monkeypatch.setattr(trace_frames, "get", answer)
    hops = trace_frames.frame_hops(timeline, "x", "http://w1", "t")
    assert asked == ["/realtime/frames?context=x&at=x.events:0:2,x.events:0:3,x.order-summary:1:9"]
    timeline.hops += hops
    assert [timeline.took_ms(h) for h in hops] == [20, 10, None]
    assert timeline.since_command_ms(hops[1]) == 60
    assert "to 2 subscribers on http://w1" in hops[1].detail
    assert "no client follows this topic there" in hops[2].detail
    console = Console(width=160, record=True)
    show(timeline, console)
    assert "realtime frame" in console.export_text()
