"""Real-time publishing: committed events and read-model changes over WebSocket and SSE.

Endpoints (on the worker's web server):

- `GET /realtime/ws` — WebSocket. The client sends a subscription as JSON text:
  `{"type": "subscribe", "context": "orders", "events": true, "views": ["order-summary"],
    "aggregate_id": "o-1", "aggregate_type": "Order", "event_type": "ItemAdded", "resume": "<token>"}`
  (every field but `context` optional; `events` defaults to true). The server answers
  `{"type": "subscribed", "token": ...}`, then `{"type": "event" | "view", ..., "token": ...}`
  frames. A malformed message gets `{"type": "error", "error": "<what is wrong>"}` and the socket
  stays usable; an unknown or expired resume token gets `{"type": "error", "code":
  "token_expired" | "token_invalid", ...}` and no subscription (never a silent "from now").
- `GET /realtime/sse?context=orders&views=order-summary&aggregate_id=o-1&...` — Server-Sent
  Events with the same frames (`event:` = type, `id:` = token, `data:` = JSON). The resume token is
  `Last-Event-ID` (EventSource sends it on reconnect) or `?resume=`. A bad token answers 410.

Each subscription has its own confluent-kafka consumer (`read_committed`, partitions assigned,
no group, no commits) polled in its own thread: a catching-up client pauses only its own
consumer, and the event loop never blocks. (aiokafka in the loop was the first choice, but it
cannot read our lz4-compressed event batches without an extra codec library.) Frames go through
a bounded per-client queue; a client that lets it stay full for `GRACE_S` seconds is
disconnected with close code 4008 (SSE: an `error` event, then the stream ends). A token is
base64url JSON `{topic: {partition: next offset}}` over every subscribed partition; order is
Kafka's (per partition, so per aggregate).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from confluent_kafka import Consumer, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams import metrics
from streams.client import consumer_config
from streams.config import Settings
from streams.kafka.runtime import ContextRuntime, take
from streams.sinks.deriver import GenericDecoder
from streams.wire import headers as h
from streams.wire.codec import DecodeError
from streams.wire.jsonable import to_json

log = logging.getLogger(__name__)

CLOSE_SLOW_CLIENT = 4008
"""WebSocket close code: the client did not read fast enough (its buffer stayed full)."""
GRACE_S = 2.0
STATIC_DIR = Path(__file__).parent / "static"
SUBSCRIPTION_FIELDS = {
    "type",
    "context",
    "events",
    "views",
    "aggregate_id",
    "aggregate_type",
    "event_type",
    "resume",
}


class SubscriptionError(ValueError):
    """A subscription request that cannot be served; the message names the problem."""


class TokenError(Exception):
    """A resume token that cannot be honoured. `code`: token_invalid | token_expired."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Subscription:
    """What a client wants: a context's events and/or views, filtered, from a token or from now."""

    context: str
    events: bool = True
    views: tuple[str, ...] = ()
    aggregate_id: str = ""
    aggregate_type: str = ""
    event_type: str = ""
    resume: str = ""


def parse_subscription(data: Any, settings: Settings) -> Subscription:
    """Validate a subscription (a JSON object or query parameters)."""
    if not isinstance(data, dict):
        raise SubscriptionError("a subscription must be a JSON object")
    unknown = sorted(set(data) - SUBSCRIPTION_FIELDS)
    if unknown:
        raise SubscriptionError(f"unknown field(s) {', '.join(unknown)}")
    if data.get("type", "subscribe") != "subscribe":
        raise SubscriptionError(f"unknown message type {data.get('type')!r}; expected 'subscribe'")
    context = data.get("context")
    if not isinstance(context, str) or not context:
        raise SubscriptionError("context (non-empty string) is required")
    if context not in settings.contexts:
        raise SubscriptionError(f"unknown context {context!r}; known: {', '.join(settings.contexts)}")
    events = data.get("events", True)
    if isinstance(events, str):
        events = events.lower() not in ("0", "false", "no", "")
    if not isinstance(events, bool):
        raise SubscriptionError("events must be a boolean")
    views = data.get("views", [])
    if isinstance(views, str):
        views = [v for v in views.split(",") if v]
    if not isinstance(views, list) or not all(isinstance(v, str) and v for v in views):
        raise SubscriptionError("views must be a list of view names")
    if not events and not views:
        raise SubscriptionError("nothing to subscribe to: set events true and/or name views")
    text = {}
    for name in ("aggregate_id", "aggregate_type", "event_type", "resume"):
        value = data.get(name) or ""
        if not isinstance(value, str):
            raise SubscriptionError(f"{name} must be a string")
        text[name] = value
    return Subscription(context, events, tuple(views), **text)


def encode_token(positions: dict[str, dict[int, int]]) -> str:
    """An opaque resume token: the next offset of every subscribed partition."""
    raw = json.dumps({t: {str(p): o for p, o in ps.items()} for t, ps in positions.items()}, sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str) -> dict[str, dict[int, int]]:
    """The positions in a token (TokenError(token_invalid) when it is not one of ours)."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return {str(t): {int(p): int(o) for p, o in ps.items()} for t, ps in raw.items()}
    except (binascii.Error, ValueError, AttributeError, TypeError, UnicodeDecodeError) as exc:
        raise TokenError("token_invalid", f"resume token is not a token of this server: {exc}") from None


@dataclass
class Feed:
    """One subscription's consumer: assigned partitions, positions, filtered and decoded frames."""

    settings: Settings
    runtime: ContextRuntime
    decoder: GenericDecoder
    subscription: Subscription
    positions: dict[str, dict[int, int]] = field(default_factory=dict)
    _consumer: Consumer | None = None
    _thread: ThreadPoolExecutor | None = None

    def topics(self) -> list[str]:
        """The subscribed topics (events first, then views)."""
        topics = [self.runtime.topics.events] if self.subscription.events else []
        return topics + [self.runtime.topics.view(v) for v in self.subscription.views]

    async def open(self) -> None:
        """Assign every partition at the token's offsets or at the current committed end."""
        # One thread per subscription: librdkafka polls block, and the event loop must not.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="realtime")
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._open)
        except BaseException:
            await self.close()
            raise

    def _open(self) -> None:
        admin = AdminClient({"bootstrap.servers": self.settings.bootstrap})
        metadata = admin.list_topics(timeout=10).topics
        partitions: list[TopicPartition] = []
        for topic in self.topics():
            if topic not in metadata or metadata[topic].error is not None:
                raise SubscriptionError(f"topic {topic} does not exist (unknown view?)")
            partitions += [TopicPartition(topic, p) for p in sorted(metadata[topic].partitions)]
        committed = IsolationLevel.READ_COMMITTED
        begin = {
            (tp.topic, tp.partition): f.result().offset
            for tp, f in admin.list_offsets({tp: OffsetSpec.earliest() for tp in partitions}).items()
        }
        end = {  # the last stable offset: nothing of an open transaction is skipped
            (tp.topic, tp.partition): f.result().offset
            for tp, f in admin.list_offsets(
                {tp: OffsetSpec.latest() for tp in partitions}, isolation_level=committed
            ).items()
        }
        if self.subscription.resume:
            wanted = decode_token(self.subscription.resume)
            self._check_token(wanted, partitions, begin, end)
            self.positions = wanted
        else:
            self.positions = {}
            for tp in partitions:
                self.positions.setdefault(tp.topic, {})[tp.partition] = end[(tp.topic, tp.partition)]
        self._consumer = Consumer(consumer_config(self.settings))
        self._consumer.assign(
            [
                TopicPartition(tp.topic, tp.partition, self.positions[tp.topic][tp.partition])
                for tp in partitions
            ]
        )

    def _check_token(
        self,
        wanted: dict[str, dict[int, int]],
        partitions: list[TopicPartition],
        begin: dict[tuple[str, int], int],
        end: dict[tuple[str, int], int],
    ) -> None:
        have = {(tp.topic, tp.partition) for tp in partitions}
        given = {(t, p) for t, ps in wanted.items() for p in ps}
        if have != given:
            raise TokenError(
                "token_invalid", "resume token is for another subscription (topics or partitions differ)"
            )
        for tp in partitions:
            offset = wanted[tp.topic][tp.partition]
            low, high = begin[(tp.topic, tp.partition)], end[(tp.topic, tp.partition)]
            if offset < low:
                raise TokenError(
                    "token_expired",
                    f"resume token expired: {tp.topic}[{tp.partition}] offset {offset} was deleted "
                    f"(log starts at {low}); resubscribe without a token",
                )
            if offset > high:
                raise TokenError(
                    "token_invalid",
                    f"resume token is ahead of {tp.topic}[{tp.partition}] ({offset} > {high})",
                )

    @property
    def token(self) -> str:
        """The token of the current position."""
        return encode_token(self.positions)

    async def frames(self) -> AsyncIterator[dict[str, Any]]:
        """Frames of matching records, in partition order, each with the token after it."""
        assert self._consumer is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = await loop.run_in_executor(self._thread, take, self._consumer, 500, 0.5)
            for record in batch:
                if record.error() is not None:
                    continue
                self.positions[record.topic()][record.partition()] = record.offset() + 1
                frame = self._frame(record)
                if frame is not None:
                    frame["token"] = self.token
                    yield frame

    def _frame(self, record: Any) -> dict[str, Any] | None:
        sub = self.subscription
        where = {"topic": record.topic(), "partition": record.partition(), "offset": record.offset()}
        key = (record.key() or b"").decode("utf-8", "replace")
        if record.topic() == self.runtime.topics.events:
            hdrs = h.as_dict(record.headers())
            if sub.aggregate_id and hdrs.get(h.AGGREGATE_ID, key) != sub.aggregate_id:
                return None
            if sub.aggregate_type and hdrs.get(h.AGGREGATE_TYPE) != sub.aggregate_type:
                return None
            if sub.event_type and hdrs.get(h.EVENT_TYPE) != sub.event_type:
                return None
            try:
                decoded = self.runtime.codec.decode(record.value())
                data: Any = to_json(decoded.message)
            except DecodeError as exc:
                data = {"undecodable": str(exc)}
            return {
                "type": "event",
                "context": sub.context,
                **where,
                "key": key,
                "event_id": hdrs.get(h.EVENT_ID, ""),
                "event_type": hdrs.get(h.EVENT_TYPE, ""),
                "aggregate_id": hdrs.get(h.AGGREGATE_ID, key),
                "aggregate_type": hdrs.get(h.AGGREGATE_TYPE, ""),
                "aggregate_version": int(hdrs.get(h.AGGREGATE_VERSION, "0") or 0),
                "occurred_at": hdrs.get(h.OCCURRED_AT, ""),
                "headers": hdrs,
                "data": data,
                "committed_ms": record.timestamp()[1],
            }
        if sub.aggregate_id and key != sub.aggregate_id:
            return None
        view = record.topic().removeprefix(f"{self.settings.topic_prefix}{sub.context}.")
        document: Any = None
        if record.value() is not None:
            try:
                _, document = self.decoder.decode(record.value())
                if isinstance(document.get("state"), str):
                    document["state"] = json.loads(document["state"])
            except (DecodeError, ValueError) as exc:
                document = {"undecodable": str(exc)}
        return {
            "type": "view",
            "context": sub.context,
            "view": view,
            **where,
            "key": key,
            "deleted": record.value() is None,
            "document": document,
            "committed_ms": record.timestamp()[1],
        }

    async def close(self) -> None:
        """Close the consumer (in its thread) and the thread."""
        consumer, self._consumer = self._consumer, None
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if consumer is not None:
            await asyncio.get_running_loop().run_in_executor(thread, consumer.close)
        thread.shutdown(wait=False)


class SlowClient(Exception):
    """The client's buffer stayed full for GRACE_S seconds."""


class Outbox:
    """A bounded queue of frames in front of one client, drained by a sender task."""

    def __init__(self, size: int, send: Callable[[dict[str, Any]], Awaitable[None]], transport: str) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=size)
        self._send = send
        self.transport = transport

    async def put(self, frame: dict[str, Any]) -> None:
        """Queue a frame; raise SlowClient when no room frees up within GRACE_S seconds."""
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            try:
                await asyncio.wait_for(self.queue.put(frame), GRACE_S)
            except TimeoutError:
                raise SlowClient(
                    f"client buffer of {self.queue.maxsize} messages full for {GRACE_S}s"
                ) from None

    async def run(self) -> None:
        """Send frames in order until cancelled."""
        while True:
            frame = await self.queue.get()
            await self._send(frame)
            metrics.REALTIME_PUSHED.labels(self.transport, frame.get("type", "?")).inc()


class Realtime:
    """The endpoints' shared state: one ContextRuntime per context (created on first use)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._runtimes: dict[str, ContextRuntime] = {}
        self._decoder: GenericDecoder | None = None
        self._lock = asyncio.Lock()

    async def feed(self, subscription: Subscription) -> Feed:
        """An opened Feed (raises SubscriptionError / TokenError)."""
        async with self._lock:
            if subscription.context not in self._runtimes:
                loop = asyncio.get_running_loop()
                self._runtimes[subscription.context] = await loop.run_in_executor(
                    None, ContextRuntime.connect, self.settings, subscription.context
                )
        runtime = self._runtimes[subscription.context]
        if self._decoder is None:
            self._decoder = GenericDecoder(runtime.codec.registry)
        feed = Feed(self.settings, runtime, self._decoder, subscription)
        await feed.open()
        return feed

    async def pump(self, feed: Feed, outbox: Outbox) -> None:
        """Move a feed's frames into an outbox (raises SlowClient)."""
        async for frame in feed.frames():
            await outbox.put(frame)

    # --- WebSocket -------------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """`GET /realtime/ws`."""
        ws = web.WebSocketResponse(heartbeat=30)
        await ws.prepare(request)
        outbox = Outbox(self.settings.realtime_buffer, lambda f: ws.send_str(json.dumps(f)), "websocket")
        sender = asyncio.create_task(outbox.run())
        pump: asyncio.Task[None] | None = None
        feed: Feed | None = None
        metrics.REALTIME_CLIENTS.labels("websocket").inc()

        async def subscribe(subscription: Subscription) -> None:
            nonlocal feed
            try:
                feed = await self.feed(subscription)
            except TokenError as exc:
                await outbox.put({"type": "error", "code": exc.code, "error": str(exc)})
                return
            except SubscriptionError as exc:
                await outbox.put({"type": "error", "code": "bad_subscription", "error": str(exc)})
                return
            await outbox.put({"type": "subscribed", "token": feed.token, "topics": feed.topics()})
            try:
                await self.pump(feed, outbox)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not isinstance(exc, SlowClient):
                    log.exception("real-time subscription failed")
                    await outbox.put(
                        {"type": "error", "code": "internal", "error": f"{type(exc).__name__}: {exc}"}
                    )
                    return
                metrics.REALTIME_DROPPED.labels("websocket", "slow_client").inc()
                log.info("dropping slow websocket client: %s", exc)
                sender.cancel()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(ws.close(code=CLOSE_SLOW_CLIENT, message=str(exc).encode()), 2)
                if request.transport is not None:
                    request.transport.close()

        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.BINARY:
                        await outbox.put(
                            {"type": "error", "code": "bad_subscription", "error": "send JSON text"}
                        )
                    continue
                try:
                    subscription = parse_subscription(json.loads(msg.data), self.settings)
                except ValueError as exc:  # JSONDecodeError and SubscriptionError
                    await outbox.put({"type": "error", "code": "bad_subscription", "error": str(exc)})
                    continue
                if pump is not None:
                    pump.cancel()
                    with contextlib.suppress(BaseException):
                        await pump
                    if feed is not None:
                        await feed.close()
                pump = asyncio.create_task(subscribe(subscription))
        except SlowClient:
            metrics.REALTIME_DROPPED.labels("websocket", "slow_client").inc()
        finally:
            metrics.REALTIME_CLIENTS.labels("websocket").dec()
            for task in (pump, sender):
                if task is not None:
                    task.cancel()
            if feed is not None:
                await feed.close()
        return ws

    # --- SSE -------------------------------------------------------------------------------

    async def sse(self, request: web.Request) -> web.StreamResponse:
        """`GET /realtime/sse`."""
        params: dict[str, Any] = {k: v for k, v in request.query.items() if k != "access_token"}
        last_event_id = request.headers.get("Last-Event-ID", "")
        if last_event_id:
            params["resume"] = last_event_id
        try:
            subscription = parse_subscription(params, self.settings)
            feed = await self.feed(subscription)
        except SubscriptionError as exc:
            return web.json_response({"error": str(exc), "code": "bad_subscription"}, status=400)
        except TokenError as exc:
            return web.json_response({"error": str(exc), "code": exc.code}, status=410)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)

        async def send(frame: dict[str, Any]) -> None:
            token = frame.get("token", "")
            head = f"id: {token}\n" if token else ""
            await response.write(f"{head}event: {frame['type']}\ndata: {json.dumps(frame)}\n\n".encode())

        outbox = Outbox(self.settings.realtime_buffer, send, "sse")
        sender = asyncio.create_task(outbox.run())
        pump = asyncio.create_task(self.pump(feed, outbox))
        metrics.REALTIME_CLIENTS.labels("sse").inc()
        try:
            await outbox.put({"type": "subscribed", "token": feed.token, "topics": feed.topics()})
            # ends when the client goes away (the sender's write fails) or the pump gives up
            await asyncio.wait({pump, sender}, return_when=asyncio.FIRST_COMPLETED)
            if pump.done() and not pump.cancelled() and pump.exception() is not None:
                log.info("sse subscription ended: %r", pump.exception())
            if pump.done() and not pump.cancelled() and isinstance(pump.exception(), SlowClient):
                metrics.REALTIME_DROPPED.labels("sse", "slow_client").inc()
                sender.cancel()
                error = {"type": "error", "code": CLOSE_SLOW_CLIENT, "error": str(pump.exception())}
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(send(error), 1)
        finally:
            metrics.REALTIME_CLIENTS.labels("sse").dec()
            for task in (pump, sender):
                task.cancel()
            await feed.close()
        return response

    async def live_page(self, request: web.Request) -> web.StreamResponse:
        """`GET /live`: the page that shows events and a read model as they commit."""
        return web.FileResponse(STATIC_DIR / "live.html")


def register_realtime(app: Any, settings: Settings) -> None:
    """Add the real-time routes and the live page to a Faust app's aiohttp application."""
    realtime = Realtime(settings)
    router = app.web.web_app.router
    router.add_get("/realtime/ws", realtime.websocket)
    router.add_get("/realtime/sse", realtime.sse)
    router.add_get("/live", realtime.live_page)
    router.add_static("/static/", STATIC_DIR)


def now_ms() -> int:
    """Wall-clock milliseconds (clients compare it with a frame's `committed_ms`)."""
    return int(time.time() * 1000)
