"""Committed records as the real-time feed shares them: decoded once, rendered per token.

A record of a context's events topic or of one of its view topics becomes a `FeedRecord`: the
fields the subscription filters look at, and the frame's JSON without its token. Every
subscriber that receives it gets the same text with the token of its own position spliced in,
so a record is decoded once however many subscribers it reaches.

A frame whose JSON would pass the frame cap (`STREAMS_REALTIME_FRAME_BYTES`) is replaced by a
`changed` frame: the record's position, key and (for events) its aggregate and version, the
size of the body left out, and the path to fetch it from (docs/realtime-and-sinks.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from confluent_kafka import Message

from streams.core.views import without_personal
from streams.kafka.runtime import ContextRuntime
from streams.wire import headers as h
from streams.wire.generic import GenericDecoder
from streams.wire.jsonable import to_json

TopicPartition = tuple[str, int]
"""(topic, partition): where a record is and what a position is for."""

KEEPALIVE_SSE = b": keep-alive\n\n"
"""An SSE comment: clients ignore it, and writing it finds a connection that has gone."""


@dataclass(slots=True)
class FeedRecord:
    """One committed record, with what the filters need and its frame without a token."""

    topic: str
    partition: int
    offset: int
    kind: str
    """`event` or `view`."""
    key: str
    aggregate_id: str
    aggregate_type: str
    event_type: str
    body: str
    """The frame as JSON text, ending in `}`, without its `token` field."""
    seq: int = 0
    """Arrival order in the live feed (set when it is dispatched)."""
    name: str = ""
    """The frame's type when it is not `kind` (`changed`: a frame without its body)."""
    published_ms: int = 0
    """Wall-clock ms when the fanout dispatched it (offered it to the live subscribers)."""
    delivered: int = 0
    """Subscribers it was handed to so far (live ones, and those catching up from the ring)."""

    @property
    def tp(self) -> TopicPartition:
        """Its (topic, partition)."""
        return (self.topic, self.partition)

    def text(self, token: str) -> str:
        """The frame's JSON with `token` (tokens are base64url, nothing to escape)."""
        return f'{self.body[:-1]},"token":"{token}"}}'

    def sse(self, token: str) -> bytes:
        """The frame as one Server-Sent Event: the type as `event:`, the token as `id:`."""
        return f"id: {token}\nevent: {self.name or self.kind}\ndata: {self.text(token)}\n\n".encode()


def dumps(frame: dict[str, Any]) -> str:
    """JSON text of a frame (orjson; the standard library for what orjson refuses)."""
    try:
        return orjson.dumps(frame).decode()
    except TypeError:
        return json.dumps(frame, default=str)


def control_frame(frame: dict[str, Any], transport: str) -> str | bytes:
    """A frame that is not a record (`subscribed`, `error`) rendered for a transport."""
    text = dumps(frame)
    if transport != "sse":
        return text
    token = frame.get("token", "")
    head = f"id: {token}\n" if token else ""
    return f"{head}event: {frame['type']}\ndata: {text}\n\n".encode()


CHANGED_FIELDS = (
    "context", "view", "topic", "partition", "offset", "key", "deleted", "event_id", "event_type",
    "aggregate_id", "aggregate_type", "aggregate_version", "occurred_at", "committed_ms",
)  # fmt: skip
"""What a `changed` frame keeps of the frame it stands for."""
_VERSION_SUFFIX = re.compile(r"\.v\d+$")


def changed_frame(frame: dict[str, Any], size: int) -> dict[str, Any]:
    """The frame sent instead of one of `size` bytes, over the frame cap: where the change is
    and where to fetch it, without the body."""
    context = frame["context"]
    if frame["type"] == "event":
        aggregate = quote(frame["aggregate_id"], safe="")
        fetch = f"/{context}/aggregates/{aggregate}/events?from_version={frame['aggregate_version']}&limit=1"
    else:
        view = _VERSION_SUFFIX.sub("", frame["view"])
        fetch = f"/{context}/views/{quote(view, safe='')}/{quote(frame['key'], safe='')}"
    kept = {k: frame[k] for k in CHANGED_FIELDS if k in frame}
    return {"type": "changed", "of": frame["type"], **kept, "bytes": size, "fetch": fetch}


class FrameDecoder:
    """Turns consumed messages into `FeedRecord`s (blocking: it may ask the registry); a frame
    over `max_frame_bytes` becomes a `changed` frame."""

    def __init__(
        self,
        runtime: ContextRuntime,
        decoder: GenericDecoder,
        prefix: str,
        max_frame_bytes: int | None = None,
    ) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.elided = 0
        """Frames replaced by `changed` frames so far (for the metrics)."""
        self.runtime = runtime
        self.decoder = decoder
        self.context = runtime.context.name
        self.events_topic = runtime.topics.events
        self._view_prefix = f"{prefix}{self.context}."
        self._forgetting = {v.name: v.forgetting for v in runtime.context.views if v.forgetting}
        """The views declaring personal fields: their frames carry the replacements."""

    def record(self, msg: Message) -> FeedRecord:
        """The feed's form of one message of the events topic or a view topic."""
        key = (msg.key() or b"").decode("utf-8", "replace")
        where = {"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset()}
        if msg.topic() == self.events_topic:
            return self._event(msg, key, where)
        return self._view(msg, key, where)

    def _event(self, msg: Message, key: str, where: dict[str, Any]) -> FeedRecord:
        hdrs = h.as_dict(msg.headers())
        try:
            # personal fields never reach the feed: its ring and clients cannot be shredded
            data: Any = to_json(self.runtime.codec.decode(msg.value(), keep_personal=False).message)
        except Exception as exc:  # an undecodable event is still shown, with the reason
            data = {"undecodable": str(exc)}
        aggregate_id = hdrs.get(h.AGGREGATE_ID, key)
        frame = {
            "type": "event",
            "context": self.context,
            **where,
            "key": key,
            "event_id": hdrs.get(h.EVENT_ID, ""),
            "event_type": hdrs.get(h.EVENT_TYPE, ""),
            "aggregate_id": aggregate_id,
            "aggregate_type": hdrs.get(h.AGGREGATE_TYPE, ""),
            "aggregate_version": _int(hdrs.get(h.AGGREGATE_VERSION, "0")),
            "occurred_at": hdrs.get(h.OCCURRED_AT, ""),
            "headers": hdrs,
            "data": data,
            "committed_ms": msg.timestamp()[1],
        }
        body, name = self._body(frame)
        return FeedRecord(
            msg.topic(), msg.partition(), msg.offset(), "event", key, aggregate_id,
            frame["aggregate_type"], frame["event_type"], body, name=name,
        )  # fmt: skip

    def _view(self, msg: Message, key: str, where: dict[str, Any]) -> FeedRecord:
        document: Any = None
        if msg.value() is not None:
            try:
                _, document = self.decoder.decode(msg.value())
                if isinstance(document.get("state"), str):
                    document["state"] = json.loads(document["state"])
                document.pop("versions", None)  # bookkeeping for failover, not for clients
                view = _VERSION_SUFFIX.sub("", msg.topic().removeprefix(self._view_prefix))
                forgetting = self._forgetting.get(view)
                if forgetting is not None and isinstance(document.get("state"), dict):
                    # personal fields never reach the feed: its ring and clients cannot be shredded
                    document["state"] = without_personal(forgetting, document["state"])
            except Exception as exc:  # shown with the reason, like an undecodable event
                document = {"undecodable": str(exc)}
        frame = {
            "type": "view",
            "context": self.context,
            "view": msg.topic().removeprefix(self._view_prefix),
            **where,
            "key": key,
            "deleted": msg.value() is None,
            "document": document,
            "committed_ms": msg.timestamp()[1],
        }
        body, name = self._body(frame)
        return FeedRecord(
            msg.topic(), msg.partition(), msg.offset(), "view", key, key, "", "", body, name=name
        )

    def _body(self, frame: dict[str, Any]) -> tuple[str, str]:
        """The frame's JSON and its name ("": its kind), or a `changed` frame's over the cap."""
        body = dumps(frame)
        size = len(body.encode())
        if self.max_frame_bytes is None or size <= self.max_frame_bytes:
            return body, ""
        self.elided += 1
        return dumps(changed_frame(frame, size)), "changed"


def _int(text: str) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0
