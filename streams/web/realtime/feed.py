"""One context's live feed on a worker: the reader thread, token checks and the catch-up path.

`ContextFeed` runs one `read_committed` consumer (one thread) over a context's events topic and
the view topics its clients ask for (each view's served version), decodes each record once
(`records.FrameDecoder`) and hands batches to its `Fanout` on the event loop. A client resuming
from a token, or one that fell behind, catches up through `catch_up`: from the ring of recent
records when its position is there, else from Kafka through a `ReaderPool` of a few consumers
shared by all clients; then it joins the live feed (see `fanout`).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from confluent_kafka import IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.config import Settings
from streams.kafka import clients
from streams.kafka.hosting import restart_loop
from streams.kafka.readers import ReaderPool
from streams.kafka.runtime import ContextRuntime
from streams.web.realtime.fanout import Fanout, Subscriber
from streams.web.realtime.records import FeedRecord, FrameDecoder, control_frame
from streams.web.realtime.subscription import Subscription, SubscriptionError, TokenError, decode_token
from streams.wire.generic import GenericDecoder

log = logging.getLogger(__name__)

CATCH_UP_BATCH = 1000
"""Records one catch-up read takes from Kafka."""


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
        served: Callable[[str, str], int] = lambda _context, _view: 1,
    ) -> None:
        self.settings = settings
        self.served = served
        """The version of a view the worker serves (its topic is the one followed)."""
        self.runtime = runtime
        self.secret = secret
        self.fanout = Fanout(
            runtime.topics.events, secret, settings.realtime_ring, ring_bytes=settings.realtime_ring_bytes
        )
        self.frames = FrameDecoder(runtime, decoder, settings.topic_prefix, settings.realtime_frame_bytes)
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
        """The topics of a subscription (events first, then each view's served version);
        SubscriptionError for a view the context does not declare."""
        topics = [self.runtime.topics.events] if subscription.events else []
        context = subscription.context
        declared = {v.name for v in self.runtime.context.views}
        for v in subscription.views:
            if v not in declared:
                known = ", ".join(sorted(declared))
                raise SubscriptionError(f"unknown view {v[:64]!r} of {context}; known: {known}")
        return topics + [
            self.runtime.topics.view_version(v, self.served(context, v)) for v in subscription.views
        ]

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
