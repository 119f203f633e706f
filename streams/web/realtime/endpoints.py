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
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from streams import metrics
from streams.config import Settings
from streams.kafka.runtime import Runtimes
from streams.web.realtime.feed import Feed, Outbox, SlowClient
from streams.web.realtime.subscription import (
    NotReady,
    Subscription,
    SubscriptionError,
    TokenError,
    parse_subscription,
)
from streams.wire.generic import GenericDecoder

log = logging.getLogger(__name__)

CLOSE_SLOW_CLIENT = 4008
"""WebSocket close code: the client did not read fast enough (its buffer stayed full)."""
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"


class RealtimeEndpoints:
    """`/realtime/ws`, `/realtime/sse` and the `/live` page."""

    def __init__(self, settings: Settings, runtimes: Runtimes, secret: Callable[[], bytes | None]) -> None:
        self.settings = settings
        self.runtimes = runtimes
        self.secret = secret
        self._decoder: GenericDecoder | None = None

    def routes(self) -> list[web.AbstractRouteDef]:
        """This group's routes."""
        return [
            web.get("/realtime/ws", self.websocket),
            web.get("/realtime/sse", self.sse),
            web.get("/live", self.live_page),
            web.static("/static/", STATIC_DIR),
        ]

    async def feed(self, subscription: Subscription) -> Feed:
        """An opened Feed (raises SubscriptionError / TokenError / NotReady)."""
        secret = self.secret()
        if secret is None:
            raise NotReady("the worker is starting; retry in a moment")
        loop = asyncio.get_running_loop()
        runtime = await loop.run_in_executor(None, self.runtimes.get, subscription.context)
        if self._decoder is None:
            self._decoder = GenericDecoder(runtime.codec.registry)
        feed = Feed(self.settings, runtime, self._decoder, subscription, secret)
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
            except NotReady as exc:
                await outbox.put({"type": "error", "code": "starting", "error": str(exc)})
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
                    subscription = parse_subscription(json.loads(msg.data), self.settings.contexts)
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
            subscription = parse_subscription(params, self.settings.contexts)
            feed = await self.feed(subscription)
        except SubscriptionError as exc:
            return web.json_response({"error": str(exc), "code": "bad_subscription"}, status=400)
        except NotReady as exc:
            return web.json_response(
                {"error": str(exc), "code": "starting"}, status=503, headers={"Retry-After": "1"}
            )
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
