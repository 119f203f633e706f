"""The worker's real-time feeds: one committed-record reader per context, shared by every client.

`ContextFeed` runs one `read_committed` consumer (one thread) over a context's events topic and
the view topics its clients ask for, decodes each record once (`records.FrameDecoder`) and hands
batches to its `Fanout` on the event loop. A client resuming from a token, or one that fell
behind, catches up through `catch_up`: from the ring of recent records when its position is
there, else from Kafka through a `ReaderPool` of a few consumers shared by all clients; then it
joins the live feed (see `fanout`). `Hub` holds the feeds, counts connections per client address,
checks for clients that have gone (each second) and sends keep-alives, and closes everything on
shutdown. The number of threads does not depend on the number of clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from confluent_kafka import IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams import metrics
from streams.config import Settings
from streams.kafka import clients
from streams.kafka.hosting import restart_loop
from streams.kafka.readers import ReaderPool
from streams.kafka.runtime import ContextRuntime, Runtimes
from streams.web.realtime.fanout import Closed, Fanout, Subscriber
from streams.web.realtime.mailbox import Mailbox, Signal, SlowClient
from streams.web.realtime.records import FeedRecord, FrameDecoder, control_frame
from streams.web.realtime.subscription import (
    NotReady,
    Subscription,
    SubscriptionError,
    TokenError,
    decode_token,
)
from streams.wire.generic import GenericDecoder

log = logging.getLogger(__name__)

CATCH_UP_BATCH = 1000
"""Records one catch-up read takes from Kafka."""
ABORT_AFTER_S = 2.0
"""Seconds a closed client's handler has to finish before its connection is aborted."""


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim` (None elsewhere)."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


class Refused(Exception):
    """A connection the limits refuse; `status` 429 (this address) or 503 (this worker)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ContextFeed:
    """One context's live feed on this worker: the reader thread and the fanout."""

    def __init__(
        self,
        settings: Settings,
        runtime: ContextRuntime,
        decoder: GenericDecoder,
        secret: bytes,
        admin: AdminClient,
        pool: ReaderPool,
        executor: ThreadPoolExecutor,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.secret = secret
        self.fanout = Fanout(runtime.topics.events, secret, settings.realtime_ring)
        self.frames = FrameDecoder(runtime, decoder, settings.topic_prefix)
        self._admin = admin
        self._pool = pool
        self._executor = executor
        self._loop = asyncio.get_running_loop()
        self.partitions: dict[str, int] = {}
        """Followed topics and their partition counts."""
        self._follow_lock = asyncio.Lock()
        self._lows: dict[tuple[str, int], int] = {}
        self._lows_at = 0.0
        self._requests: queue.Queue[tuple[list[TopicPartition], Future[None]]] = queue.Queue()
        self._inflight = threading.Semaphore(4)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"realtime-{runtime.context.name}", daemon=True
        )
        self._thread.start()

    # --- following topics --------------------------------------------------------------------

    async def follow(self, topics: list[str]) -> None:
        """Follow topics from their last stable offset (SubscriptionError: no such topic)."""
        async with self._follow_lock:
            missing = [t for t in topics if t not in self.partitions]
            if not missing:
                return
            counts, starts = await self._loop.run_in_executor(self._executor, self._ends, missing)
            self.fanout.add_partitions(starts)  # before the reader can deliver their records
            done: Future[None] = Future()
            self._requests.put(([TopicPartition(t, p, o) for (t, p), o in starts.items()], done))
            await asyncio.wrap_future(done)
            self.partitions.update(counts)

    def _ends(self, topics: list[str]) -> tuple[dict[str, int], dict[tuple[str, int], int]]:
        metadata = self._admin.list_topics(timeout=10).topics
        counts = {}
        for topic in topics:
            if topic not in metadata or metadata[topic].error is not None:
                raise SubscriptionError(f"topic {topic} does not exist (unknown view?)")
            counts[topic] = len(metadata[topic].partitions)
        tps = [TopicPartition(t, p) for t in topics for p in range(counts[t])]
        return counts, self._offsets(tps, OffsetSpec.latest())

    def _offsets(self, tps: list[TopicPartition], spec: OffsetSpec) -> dict[tuple[str, int], int]:
        """Earliest offsets, or last stable offsets (nothing of an open transaction is skipped)."""
        committed = IsolationLevel.READ_COMMITTED
        futures = self._admin.list_offsets({tp: spec for tp in tps}, isolation_level=committed)
        return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}

    # --- the reader thread -------------------------------------------------------------------

    def _run(self) -> None:
        restart_loop(f"real-time feed of {self.runtime.context.name}", self._session, self._stop)

    def _session(self) -> None:
        consumer = clients.reader(self.settings)
        who = f"real-time feed of {self.runtime.context.name}"
        try:
            # from the head: a restarted session re-reads nothing the fanout has not dispatched
            # (and the fanout ignores what it has)
            consumer.assign([TopicPartition(t, p, o) for (t, p), o in list(self.fanout.head.items())])
            assigned = {(t, p) for t, p in list(self.fanout.head)}
            while not self._stop.is_set():
                while not self._requests.empty():
                    tps, done = self._requests.get_nowait()
                    new = [tp for tp in tps if (tp.topic, tp.partition) not in assigned]
                    if new:
                        consumer.incremental_assign(new)
                        assigned |= {(tp.topic, tp.partition) for tp in new}
                    done.set_result(None)
                batch = clients.records(clients.take(consumer, 500, 0.1), who)
                if not batch:
                    continue
                decoded = [self.frames.record(m) for m in batch]
                while not self._inflight.acquire(timeout=0.5):
                    if self._stop.is_set():
                        return
                self._loop.call_soon_threadsafe(self._deliver, decoded)
        finally:
            consumer.close()

    def _deliver(self, records: list[FeedRecord]) -> None:
        try:
            self.fanout.dispatch(records)
        except Exception:
            log.exception("real-time dispatch failed")
        finally:
            self._inflight.release()

    def stop(self) -> None:
        """Stop the reader (blocking, at most a few seconds)."""
        self._stop.set()
        self._thread.join(5)

    # --- subscribing -------------------------------------------------------------------------

    def topics(self, subscription: Subscription) -> list[str]:
        """The topics of a subscription (events first, then views)."""
        topics = [self.runtime.topics.events] if subscription.events else []
        return topics + [self.runtime.topics.view(v) for v in subscription.views]

    async def subscribe(self, subscriber: Subscriber, start_catch_up: Callable[[Subscriber], None]) -> None:
        """Place a new subscriber: live at the head, or catching up from its token (TokenError)."""
        subscription = subscriber.subscription
        frame = {"type": "subscribed", "token": "", "topics": list(subscriber.topics)}
        if not subscription.resume:
            self.fanout.join_now(subscriber)
            frame["token"] = subscriber.token(self.fanout.head)
            subscriber.mailbox.offer(control_frame(frame, subscriber.transport))
            return
        subscriber.pos = await self._check_token(subscription.resume, subscriber)
        frame["token"] = subscriber.token(subscriber.pos)
        subscriber.mailbox.offer(control_frame(frame, subscriber.transport))
        start_catch_up(subscriber)

    async def _check_token(self, token: str, sub: Subscriber) -> dict[tuple[str, int], int]:
        wanted = decode_token(token, self.secret)
        given = {(t, p) for t, ps in wanted.items() for p in ps}
        if given != set(sub.tps):
            raise TokenError(
                "token_invalid", "resume token is for another subscription (topics or partitions differ)"
            )
        pos = {(t, p): wanted[t][p] for t, p in sub.tps}
        fanout = self.fanout
        ahead = [TopicPartition(*tp) for tp in sub.tps if pos[tp] > fanout.head[tp]]
        loop = self._loop
        # the log start is always checked (records may be deleted that the ring still holds),
        # from a copy at most a second old: a wave of reconnecting clients asks once
        low = await loop.run_in_executor(self._executor, self._log_starts, sub.tps)
        for (topic, partition), first in low.items():
            if pos[(topic, partition)] < first:
                raise TokenError(
                    "token_expired",
                    f"resume token expired: {topic}[{partition}] offset {pos[(topic, partition)]} was "
                    f"deleted (log starts at {first}); resubscribe without a token",
                )
        if ahead:
            high = await loop.run_in_executor(self._executor, self._offsets, ahead, OffsetSpec.latest())
            for (topic, partition), end in high.items():
                if pos[(topic, partition)] > end:
                    raise TokenError(
                        "token_invalid",
                        f"resume token is ahead of {topic}[{partition}] ({pos[(topic, partition)]} > {end})",
                    )
        return pos

    def _log_starts(self, tps: tuple[tuple[str, int], ...]) -> dict[tuple[str, int], int]:
        """The earliest offset of each partition, as known at most a second ago."""
        now = time.monotonic()
        if now - self._lows_at > 1.0 or not all(tp in self._lows for tp in tps):
            everything = [TopicPartition(t, p) for t, n in self.partitions.items() for p in range(n)]
            self._lows = self._offsets(everything, OffsetSpec.earliest())
            self._lows_at = now
        return {tp: self._lows[tp] for tp in tps}

    # --- catching up -------------------------------------------------------------------------

    async def catch_up(self, sub: Subscriber) -> None:
        """Feed a subscriber from its position until it joins the live feed (SlowClient when
        its buffer stays full)."""
        while sub.closed is None:
            await sub.mailbox.wait_room()
            step = self.fanout.join(sub)
            if step.joined:
                return
            if step.wait:
                await asyncio.sleep(0.05)
            elif step.records:
                await self._deliver_to(sub, step.records)
            for (topic, partition), stop in step.from_kafka.items():
                start = sub.pos[(topic, partition)]
                stretch, records = await self._loop.run_in_executor(
                    self._executor, self._read, topic, partition, start, stop
                )
                await self._deliver_to(sub, records)
                if stretch >= stop or not records:  # the rest of the stretch holds no records
                    sub.pos[(topic, partition)] = max(sub.pos[(topic, partition)], min(stretch, stop))

    def _read(self, topic: str, partition: int, start: int, stop: int) -> tuple[int, list[FeedRecord]]:
        stretch = self._pool.read(topic, partition, start, stop, CATCH_UP_BATCH)
        return stretch.position, [self.frames.record(m) for m in stretch.records]

    async def _deliver_to(self, sub: Subscriber, records: list[FeedRecord]) -> None:
        for record in records:
            if sub.closed is not None:
                return
            if record.offset < sub.pos[record.tp]:
                continue
            sub.pos[record.tp] = record.offset + 1
            if sub.accepts(record):
                await sub.mailbox.put(sub.render(record, sub.token(sub.pos)))
                self.fanout.count(sub, record)


class Hub:
    """Every real-time client of this worker: feeds per context, limits, liveness, shutdown."""

    def __init__(self, settings: Settings, runtimes: Runtimes, secret: Callable[[], bytes | None]) -> None:
        self.settings = settings
        self.runtimes = runtimes
        self.secret = secret
        self.feeds: dict[str, ContextFeed] = {}
        self.subscribers: set[Subscriber] = set()
        self.addresses: Counter[str] = Counter()
        self.closing = False
        self._starting: dict[str, asyncio.Future[ContextFeed]] = {}
        self._executor = ThreadPoolExecutor(settings.realtime_readers + 1, thread_name_prefix="realtime")
        self._pool = ReaderPool(settings, settings.realtime_readers)
        self._admin: AdminClient | None = None
        self._decoder: GenericDecoder | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._peak = 0

    # --- connections -------------------------------------------------------------------------

    def connect(self, address: str) -> None:
        """Count a new stream from `address` (Refused beyond the limits)."""
        if self.closing:
            raise Refused(503, "the worker is shutting down")
        if len(self.subscribers) >= self.settings.realtime_max_clients:
            raise Refused(503, f"this worker holds {self.settings.realtime_max_clients} streams already")
        if self.addresses[address] >= self.settings.realtime_max_per_address:
            raise Refused(
                429,
                f"{address} holds {self.settings.realtime_max_per_address} real-time streams already "
                "(STREAMS_REALTIME_MAX_PER_ADDRESS); close one first",
            )
        self.addresses[address] += 1

    def disconnect(self, address: str) -> None:
        """A stream from `address` has ended."""
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
            self.settings, runtime, self._decoder, secret, self._admin, self._pool, self._executor
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
            Mailbox(self.settings.realtime_buffer),
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
            trim = _malloc_trim()
            if trim is not None:
                trim(0)

    def _publish_counts(self) -> None:
        for feed in self.feeds.values():
            for (transport, kind), n in feed.fanout.take_pushed().items():
                metrics.REALTIME_PUSHED.labels(transport, kind).inc(n)

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
