"""`streams trace --url`: the last hop, the real-time frames a worker published.

A worker keeps a ring of its recent frames with the time its feed dispatched each and the number
of subscribers it was handed to (`streams.web.realtime.seen`). This asks a worker, through
`GET /realtime/frames` with the bearer token, about the trace's events and documents, and turns
each answer into a hop: timed after the record it carries when the ring still holds it; else
shown untimed with the reason (the ring dropped it, no client follows that view there, the
context has no feed there).
"""

from __future__ import annotations

import json
from urllib.parse import quote

from streams.cli.trace import Hop, Timeline
from streams.cli.worker_http import get

CARRIED = ("event", "document")
"""The kinds of hop whose records become real-time frames."""

WHY = {
    "out_of_ring": "not in the ring (dropped, or older than the feed)",
    "not_yet_read": "not read by the feed yet",
    "not_followed": "no client follows this topic there",
    "no_feed": "no real-time feed for the context there (no client has subscribed)",
    "no_record": "no record at this offset",
}
"""What each untimed status means, as shown."""


def frame_hops(timeline: Timeline, context: str, url: str, token: str) -> list[Hop]:
    """The real-time frame hops of the timeline's events and documents on the worker at `url`."""
    carried = [hop for hop in timeline.hops if hop.kind in CARRIED]
    if not carried:
        return []
    at = ",".join(f"{hop.topic}:{hop.partition}:{hop.offset}" for hop in carried)
    path = f"/realtime/frames?context={quote(context, safe='')}&at={quote(at, safe=':,')}"
    answer = json.loads(get(url, path, token))
    worker = answer.get("worker") or url
    hops = []
    for hop, frame in zip(carried, answer["frames"], strict=True):
        status = frame["status"]
        if status == "in_ring":
            n = frame["delivered"]
            detail = f"{hop.kind} frame to {n} subscriber{'' if n == 1 else 's'} on {worker}"
            published = frame["published_ms"]
        else:
            detail, published = f"{hop.kind} frame: {WHY.get(status, status)} on {worker}", None
        hops.append(
            Hop("realtime frame", hop.topic, hop.partition, hop.offset, published, detail,
                after=hop.kind, after_ms=hop.timestamp_ms)
        )  # fmt: skip
    return hops
