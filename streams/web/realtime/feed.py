"""One subscription's records: a consumer over the subscribed partitions, filtered and decoded
into frames, and the bounded outbox in front of the client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, IsolationLevel, TopicPartition
from confluent_kafka.admin import OffsetSpec

from streams import metrics
from streams.config import Settings
from streams.kafka import clients
from streams.kafka.clients import take
from streams.kafka.runtime import ContextRuntime
from streams.web.realtime.subscription import (
    Subscription,
    SubscriptionError,
    TokenError,
    decode_token,
    encode_token,
)
from streams.wire import headers as h
from streams.wire.codec import DecodeError
from streams.wire.generic import GenericDecoder
from streams.wire.jsonable import to_json

GRACE_S = 2.0


@dataclass
class Feed:
    """One subscription's consumer: assigned partitions, positions, filtered and decoded frames."""

    settings: Settings
    runtime: ContextRuntime
    decoder: GenericDecoder
    subscription: Subscription
    secret: bytes
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
        admin = clients.admin(self.settings)
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
            wanted = decode_token(self.subscription.resume, self.secret)
            self._check_token(wanted, partitions, begin, end)
            self.positions = wanted
        else:
            self.positions = {}
            for tp in partitions:
                self.positions.setdefault(tp.topic, {})[tp.partition] = end[(tp.topic, tp.partition)]
        self._consumer = clients.reader(self.settings)
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
        return encode_token(self.positions, self.secret)

    async def frames(self) -> AsyncIterator[dict[str, Any]]:
        """Frames of matching records, in partition order, each with the token after it."""
        assert self._consumer is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = await loop.run_in_executor(self._thread, take, self._consumer, 500, 0.5)
            for record in clients.records(batch, "real-time feed"):
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
