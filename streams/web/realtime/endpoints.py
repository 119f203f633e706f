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

One reader per context on each worker feeds every subscriber (`streams.web.realtime.hub`): a
record is read and decoded once and offered to the subscribers whose filter matches, so the
number of threads does not depend on the number of clients. A client resuming from a token
catches up from a ring of recent records or, further back, through a few shared consumers, then
joins the live feed without a gap or a repeat. Frames go through a bounded per-client buffer; a
client that lets it stay full for `GRACE_S` seconds is disconnected with close code 4008 (SSE: an
`error` event, then the stream ends). Clients that have gone are noticed within a second or two
(a closed connection; SSE keep-alive comments and WebSocket pings for the silent ones). One
address may hold `STREAMS_REALTIME_MAX_PER_ADDRESS` streams (429 beyond). On shutdown every
stream is closed (WebSocket code 1001) within a few seconds. A token is base64url JSON
`{topic: {partition: next offset}}` over every subscribed partition, signed; order is Kafka's
(per partition, so per aggregate).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from streams.config import Settings
from streams.kafka.runtime import Runtimes
from streams.web.peers import Peers
from streams.web.realtime.fanout import Closed, Subscriber
from streams.web.realtime.hub import Hub
from streams.web.realtime.mailbox import Signal
from streams.web.realtime.records import KEEPALIVE_SSE, control_frame
from streams.web.realtime.seen import parse_positions, seen
from streams.web.realtime.subscription import (
    NotReady,
    SubscriptionError,
    TokenError,
    parse_subscription,
)
from streams.web.responses import problem

log = logging.getLogger(__name__)

CLOSE_SLOW_CLIENT = 4008
"""WebSocket close code: the client did not read fast enough (its buffer stayed full)."""
CLOSE_GOING_AWAY = 1001
"""WebSocket close code: the worker is shutting down."""
STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
DISCONNECTED = (ConnectionError, RuntimeError)
"""What writing to a connection that has gone raises (aiohttp: ClientConnectionResetError, or
RuntimeError for a closing transport)."""


DIRECT_WRITE_LIMIT = 64 * 1024
"""Bytes a connection may have waiting in its transport for a frame to be written directly."""


def _direct_writer(request: web.Request, response: web.StreamResponse) -> Callable[[Any], bool]:
    """Write an SSE frame to the connection at once (as aiohttp would: one chunk), when its
    transport is open and not backed up; False otherwise, and the frame is queued instead."""
    chunked = response.headers.get("Transfer-Encoding", "") == "chunked"  # set by prepare()

    def direct(item: Any) -> bool:
        transport = request.transport
        if not isinstance(item, bytes) or transport is None or transport.is_closing():
            return False
        if transport.get_write_buffer_size() > DIRECT_WRITE_LIMIT:
            return False
        transport.write(b"%x\r\n%b\r\n" % (len(item), item) if chunked else item)
        return True

    return direct


class RealtimeEndpoints:
    """`/realtime/ws`, `/realtime/sse`, `/realtime/frames` and the `/live` page."""

    def __init__(
        self,
        settings: Settings,
        runtimes: Runtimes,
        secret: Callable[[], bytes | None],
        served: Callable[[str, str], int] = lambda _context, _view: 1,
    ) -> None:
        self.settings = settings
        self.peers = Peers(settings.trusted_proxies)
        self.views = {name: {v.name for v in c.views} for name, c in runtimes.contexts.items()}
        self.hub = Hub(settings, runtimes, secret, served)

    def routes(self) -> list[web.AbstractRouteDef]:
        """This group's routes."""
        return [
            web.get("/realtime/ws", self.websocket),
            web.get("/realtime/sse", self.sse),
            web.get("/realtime/frames", self.frames),
            web.get("/live", self.live_page),
            web.static("/static/", STATIC_DIR),
        ]

    async def on_shutdown(self, _app: web.Application) -> None:
        """Close every stream, so the web server can stop within seconds."""
        await self.hub.shutdown()

    # --- WebSocket -------------------------------------------------------------------------

    async def websocket(self, request: web.Request) -> web.StreamResponse:
        """`GET /realtime/ws`."""
        address = self.peers.client(request)  # BadHeader, Refused: answered by `problems`
        self.hub.connect(address)
        try:
            return await self._websocket(request)
        finally:
            self.hub.disconnect(address)

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=self.settings.realtime_keepalive_s, max_msg_size=64 * 1024)
        await ws.prepare(request)
        sub: Subscriber | None = None
        sender: asyncio.Task[None] | None = None

        async def error(code: str, message: str) -> None:
            with contextlib.suppress(*DISCONNECTED):
                await ws.send_str(json.dumps({"type": "error", "code": code, "error": message}))

        def abort() -> None:
            if request.transport is not None:
                request.transport.abort()

        def gone() -> bool:
            return request.transport is None

        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    if msg.type == WSMsgType.BINARY:
                        await error("bad_subscription", "send JSON text")
                    continue
                try:
                    subscription = parse_subscription(json.loads(msg.data), self.settings.contexts)
                except ValueError as exc:  # JSONDecodeError and SubscriptionError
                    await error("bad_subscription", str(exc))
                    continue
                if sub is not None:  # a new subscription replaces the current one
                    sub.close(Closed.REPLACED)
                    self.hub.release(sub)
                    sub = None
                if sender is not None:
                    sender.cancel()
                    sender = None
                try:
                    sub = await self.hub.subscribe(
                        subscription, "websocket", gone=lambda: ws.closed or request.transport is None,
                        abort=abort,
                    )  # fmt: skip
                except TokenError as exc:
                    await error(exc.code, str(exc))
                    continue
                except SubscriptionError as exc:
                    await error("bad_subscription", str(exc))
                    continue
                except NotReady as exc:
                    await error("starting", str(exc))
                    continue
                sender = asyncio.ensure_future(self._send_ws(ws, sub))
        finally:
            if sender is not None:
                sender.cancel()
            if sub is not None:
                self.hub.release(sub)
        return ws

    async def _send_ws(self, ws: web.WebSocketResponse, sub: Subscriber) -> None:
        """Send a subscriber's frames until it is closed."""
        try:
            while True:
                item = await sub.mailbox.get()
                if isinstance(item, str):
                    await ws.send_str(item)
                elif item is Signal.CLOSE:
                    break
        except DISCONNECTED:
            return
        if sub.closed is Closed.SLOW:
            message = f"client buffer of {sub.mailbox.size} messages full; reconnect with the last token"
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=CLOSE_SLOW_CLIENT, message=message.encode()), 2)
            sub.abort()
        elif sub.closed is Closed.SHUTDOWN:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=CLOSE_GOING_AWAY, message=b"worker shutting down"), 1)
        elif sub.closed is Closed.FAILED:
            with contextlib.suppress(Exception):
                await ws.send_str(json.dumps({"type": "error", "code": "internal", "error": "feed failed"}))

    # --- SSE -------------------------------------------------------------------------------

    async def sse(self, request: web.Request) -> web.StreamResponse:
        """`GET /realtime/sse`."""
        address = self.peers.client(request)  # BadHeader, Refused: answered by `problems`
        self.hub.connect(address)
        try:
            return await self._sse(request)
        finally:
            self.hub.disconnect(address)

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        params: dict[str, Any] = {k: v for k, v in request.query.items() if k != "access_token"}
        last_event_id = request.headers.get("Last-Event-ID", "")
        if last_event_id:
            params["resume"] = last_event_id

        def abort() -> None:
            if request.transport is not None:
                request.transport.abort()

        def gone() -> bool:
            return request.transport is None

        # SubscriptionError, NotReady, TokenError: answered by `problems`
        subscription = parse_subscription(params, self.settings.contexts)
        sub = await self.hub.subscribe(subscription, "sse", gone=gone, abort=abort)
        try:
            response = web.StreamResponse(
                headers={
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache",
                    "X-Accel-Buffering": "no",
                }
            )
            await response.prepare(request)
            sub.mailbox.direct = _direct_writer(request, response)
            await self._send_sse(response, sub)
        finally:
            self.hub.release(sub)
        return response

    async def _send_sse(self, response: web.StreamResponse, sub: Subscriber) -> None:
        """Write a subscriber's frames until it is closed or the client goes."""
        try:
            while True:
                item = await sub.mailbox.get()
                if isinstance(item, bytes):
                    await response.write(item)
                elif item is Signal.KEEPALIVE:
                    await response.write(KEEPALIVE_SSE)
                elif item is Signal.CLOSE:
                    break
            if sub.closed is Closed.SLOW:
                frame = {
                    "type": "error",
                    "code": CLOSE_SLOW_CLIENT,
                    "error": f"client buffer of {sub.mailbox.size} messages full; reconnect with the last id",
                }
                data = control_frame(frame, "sse")
                assert isinstance(data, bytes)
                await asyncio.wait_for(response.write(data), 1)
        except (*DISCONNECTED, TimeoutError):
            return

    async def frames(self, request: web.Request) -> web.StreamResponse:
        """`GET /realtime/frames?context=…&at=topic:partition:offset,…`: when this worker's feed
        published the frames of those records and to how many subscribers (`streams.web.realtime.seen`)."""
        context = request.query.get("context", "")
        if context not in self.settings.contexts:
            return problem(
                400, f"unknown context {context[:64]!r}", reason="invalid_parameter", field="context"
            )
        try:
            positions = parse_positions(request.query.get("at", ""))
        except ValueError as exc:
            return problem(400, str(exc)[:200], reason="invalid_parameter", field="at")
        feed = self.hub.feeds.get(context)
        fanout = None if feed is None else feed.fanout
        return web.json_response(
            {
                "context": context,
                "worker": self.settings.self_url(),
                "now_ms": int(time.time() * 1000),
                "frames": [seen(fanout, *position).as_json() for position in positions],
            }
        )

    async def live_page(self, request: web.Request) -> web.StreamResponse:
        """`GET /live`: the page that shows events and a read model as they commit. Its
        `context` and `view` must be declared ones (the page builds same-origin URLs from them)."""
        context = request.query.get("context", "orders")
        if context not in self.settings.contexts or context not in self.views:
            return problem(
                400, f"unknown context {context[:64]!r}", reason="invalid_parameter", field="context"
            )
        view = request.query.get("view")
        if view is not None and view not in self.views[context]:
            return problem(400, f"unknown view {view[:64]!r}", reason="invalid_parameter", field="view")
        if request.query.get("transport", "ws") not in ("ws", "sse"):
            return problem(400, "transport is ws or sse", reason="invalid_parameter", field="transport")
        return web.FileResponse(STATIC_DIR / "live.html")
