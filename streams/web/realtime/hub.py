"""The worker's real-time clients: one committed-record reader per context, shared by all.

`Hub` holds a `ContextFeed` per context (`streams.web.realtime.feed`: the reader thread, token
checks, catch-up), counts connections per client address, checks each second for clients that
have gone and sends keep-alives, trims the heap after a wave of disconnects, and closes
everything on shutdown. The number of threads does not depend on the number of clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka.admin import AdminClient

from streams import metrics
from streams.allocator import malloc_trim
from streams.config import Settings
from streams.kafka import clients
from streams.kafka.readers import ReaderPool
from streams.kafka.runtime import Runtimes
from streams.web.realtime.fanout import Closed, Subscriber
from streams.web.realtime.feed import ContextFeed
from streams.web.realtime.mailbox import Mailbox, Signal, SlowClient
from streams.web.realtime.subscription import (
    NotReady,
    Subscription,
)
from streams.wire.generic import GenericDecoder

log = logging.getLogger(__name__)

ABORT_AFTER_S = 2.0
"""Seconds a closed client's handler has to finish before its connection is aborted."""


class Refused(Exception):
    """A connection the limits refuse; `status` 429 (this address) or 503 (this worker)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Hub:
    """Every real-time client of this worker: feeds per context, limits, liveness, shutdown."""

    def __init__(
        self,
        settings: Settings,
        runtimes: Runtimes,
        secret: Callable[[], bytes | None],
        served: Callable[[str, str], int] = lambda _context, _view: 1,
    ) -> None:
        self.settings = settings
        self.runtimes = runtimes
        self.secret = secret
        self.served = served
        self.feeds: dict[str, ContextFeed] = {}
        self.subscribers: set[Subscriber] = set()
        self.addresses: Counter[str] = Counter()
        self.sockets = 0
        """Open real-time connections (a WebSocket counts before it subscribes)."""
        self.closing = False
        self._starting: dict[str, asyncio.Future[ContextFeed]] = {}
        self._executor = ThreadPoolExecutor(settings.realtime_readers + 1, thread_name_prefix="realtime")
        self._pool = ReaderPool(settings, settings.realtime_readers)
        self._admin: AdminClient | None = None
        self._decoder: GenericDecoder | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._peak = 0
        self._elided: dict[str, int] = {}

    # --- connections -------------------------------------------------------------------------

    def connect(self, address: str) -> None:
        """Count a new stream from `address` (Refused beyond the limits)."""
        if self.closing:
            raise Refused(503, "the worker is shutting down")
        if self.sockets >= self.settings.realtime_max_clients:
            raise Refused(503, f"this worker holds {self.settings.realtime_max_clients} streams already")
        if self.addresses[address] >= self.settings.realtime_max_per_address:
            raise Refused(
                429,
                f"{address} holds {self.settings.realtime_max_per_address} real-time streams already "
                "(STREAMS_REALTIME_MAX_PER_ADDRESS); close one first",
            )
        self.addresses[address] += 1
        self.sockets += 1

    def disconnect(self, address: str) -> None:
        """A stream from `address` has ended."""
        self.sockets -= 1
        self.addresses[address] -= 1
        if self.addresses[address] <= 0:
            del self.addresses[address]

    # --- subscribers -------------------------------------------------------------------------

    async def feed(self, context: str) -> ContextFeed:
        """The context's feed, started on first use (NotReady while the worker starts)."""
        found = self.feeds.get(context)
        if found is not None:
            return found
        starting = self._starting.get(context)
        if starting is None:
            starting = self._starting[context] = asyncio.ensure_future(self._start_feed(context))
            starting.add_done_callback(lambda _f: self._starting.pop(context, None))
        return await asyncio.shield(starting)

    async def _start_feed(self, context: str) -> ContextFeed:
        secret = self.secret()
        if secret is None:
            raise NotReady("the worker is starting; retry in a moment")
        loop = asyncio.get_running_loop()
        runtime = await loop.run_in_executor(self._executor, self.runtimes.get, context)
        if self._admin is None:
            self._admin = clients.admin(self.settings)
            self._decoder = GenericDecoder(runtime.codec.registry)
        assert self._decoder is not None
        feed = ContextFeed(
            self.settings,
            runtime,
            self._decoder,
            secret,
            self._admin,
            self._pool,
            self._executor,
            self.served,
        )
        await feed.follow([runtime.topics.events])
        self.feeds[context] = feed
        if self._ticker is None:
            self._ticker = asyncio.ensure_future(self._tick())
        return feed

    async def subscribe(
        self,
        subscription: Subscription,
        transport: str,
        *,
        gone: Callable[[], bool],
        abort: Callable[[], None],
    ) -> Subscriber:
        """A subscriber fed from now or from its token (raises SubscriptionError, TokenError,
        NotReady)."""
        if self.closing:
            raise NotReady("the worker is shutting down")
        feed = await self.feed(subscription.context)
        topics = feed.topics(subscription)
        await feed.follow(topics)
        sub = Subscriber(
            subscription,
            tuple(topics),
            tuple((t, p) for t in topics for p in range(feed.partitions[t])),
            transport,
            Mailbox(self.settings.realtime_buffer, self.settings.realtime_mailbox_bytes),
            feed.secret,
        )
        sub.gone, sub.abort = gone, abort
        sub.on_detach = lambda s: self._start_catch_up(feed, s)
        await feed.subscribe(sub, lambda s: self._start_catch_up(feed, s))
        self.subscribers.add(sub)
        metrics.REALTIME_CLIENTS.labels(transport).inc()
        return sub

    def _start_catch_up(self, feed: ContextFeed, sub: Subscriber) -> None:
        async def run() -> None:
            try:
                await feed.catch_up(sub)
            except SlowClient as exc:
                metrics.REALTIME_DROPPED.labels(sub.transport, "slow_client").inc()
                log.info("dropping slow %s client: %s", sub.transport, exc)
                sub.close(Closed.SLOW)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("real-time catch-up failed")
                sub.close(Closed.FAILED)

        sub.task = asyncio.ensure_future(run())

    def release(self, sub: Subscriber) -> None:
        """A subscriber's handler has ended: forget it."""
        if sub not in self.subscribers:
            return
        self.subscribers.discard(sub)
        feed = self.feeds.get(sub.subscription.context)
        if feed is not None:
            feed.fanout.leave(sub)
        if sub.task is not None:
            sub.task.cancel()
        if sub.closed is None:
            sub.close(Closed.GONE)
        metrics.REALTIME_CLIENTS.labels(sub.transport).dec()

    # --- liveness ----------------------------------------------------------------------------

    async def _tick(self) -> None:
        """Each second: close the clients that have gone, abort the connections of closed
        clients whose handler is stuck, send keep-alives, publish the push counts."""
        beat = 0.0
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            keepalive = now - beat >= self.settings.realtime_keepalive_s
            if keepalive:
                beat = now
            self._give_back_memory()
            for sub in list(self.subscribers):
                if sub.closed is None:
                    if sub.gone():
                        sub.close(Closed.GONE)
                    elif keepalive and sub.transport == "sse" and not len(sub.mailbox):
                        sub.mailbox.offer(Signal.KEEPALIVE)
                elif now - sub.closed_at > ABORT_AFTER_S:
                    sub.abort()
            self._publish_counts()

    def _give_back_memory(self) -> None:
        """After a wave of disconnects (at most a tenth of the peak left, a peak of a thousand
        or more), collect and hand the freed heap back to the system: CPython and glibc keep
        freed memory for reuse otherwise, and the worker's RSS would stay at its peak."""
        count = len(self.subscribers)
        self._peak = max(self._peak, count)
        if self._peak >= 1000 and count <= self._peak // 10:
            self._peak = count
            gc.collect()
            malloc_trim()

    def _publish_counts(self) -> None:
        for context, feed in self.feeds.items():
            for (transport, kind), n in feed.fanout.take_pushed().items():
                metrics.REALTIME_PUSHED.labels(transport, kind).inc(n)
            metrics.REALTIME_RING_BYTES.labels(context).set(feed.fanout.ring_bytes)
            elided = feed.frames.elided  # counted by the reader threads: only ever grows
            if elided > self._elided.get(context, 0):
                metrics.REALTIME_ELIDED.labels(context).inc(elided - self._elided.get(context, 0))
                self._elided[context] = elided
        metrics.REALTIME_MAILBOX_BYTES.set(sum(sub.mailbox.bytes for sub in self.subscribers))

    # --- shutdown ----------------------------------------------------------------------------

    async def shutdown(self, *_args: object) -> None:
        """Close every stream (their handlers end within seconds), then stop the readers."""
        self.closing = True
        for sub in list(self.subscribers):
            sub.close(Closed.SHUTDOWN)
        deadline = time.monotonic() + ABORT_AFTER_S
        while self.subscribers and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for sub in list(self.subscribers):
            sub.abort()
        if self._ticker is not None:
            self._ticker.cancel()
        loop = asyncio.get_running_loop()
        for feed in self.feeds.values():
            with contextlib.suppress(Exception):
                await loop.run_in_executor(None, feed.stop)
        self._pool.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
