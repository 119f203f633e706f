"""The real-time tests' kit: reading WebSocket and SSE frames, and the events a stream must match."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from streams.client import CommandClient, read_topic
from streams.wire import headers as h
from tests.integration.workers import Deployment


def event_ids(dep: Deployment, client: CommandClient, aggregate_id: str) -> list[str]:
    """The ids of an aggregate's events in the log, in order."""
    return [
        h.as_dict(m.headers())[h.EVENT_ID]
        for m in read_topic(dep.settings(), client.runtime.topics.events, idle_timeout=1.0)
        if m.key() == aggregate_id.encode()
    ]


async def ws_frames(
    ws: aiohttp.ClientWebSocketResponse, count: int, timeout: float = 30
) -> list[dict[str, Any]]:
    """The next `count` text frames, decoded (fails on any other frame or after `timeout`)."""
    frames = []
    deadline = time.monotonic() + timeout
    while len(frames) < count:
        msg = await ws.receive(timeout=max(deadline - time.monotonic(), 0.01))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frames.append(json.loads(msg.data))
    return frames


async def no_more(ws: aiohttp.ClientWebSocketResponse, wait: float = 1.5) -> None:
    """No frame comes within `wait` seconds."""
    with pytest.raises(asyncio.TimeoutError):
        msg = await ws.receive(timeout=wait)
        raise AssertionError(f"unexpected frame {msg.data}")


def sse_read(lines: Iterator[str], count: int) -> list[dict[str, Any]]:
    """The next `count` SSE events' data, decoded, each with its id as `_id`."""
    frames: list[dict[str, Any]] = []
    event: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in event:
                frame = json.loads(event["data"])
                frame["_id"] = event.get("id", "")
                frames.append(frame)
                if len(frames) == count:
                    return frames
            event = {}
        elif ":" in line:
            name, _, value = line.partition(":")
            event[name] = value.lstrip(" ")
    return frames
