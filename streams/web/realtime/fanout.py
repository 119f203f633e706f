"""One context's live feed shared by every subscriber of a worker (no Kafka, no HTTP here).

The worker reads each context's committed records once (`streams.web.realtime.hub`) and hands
them to `Fanout.dispatch` on the event loop, in the order it read them. The fanout

- keeps the **head**: per partition, the offset after the last record dispatched;
- keeps a **ring** of the most recent records (bounded by a count and by the bytes of their
  frames), so a client that reconnects a moment
  later, or one that fell behind, catches up from memory;
- keeps an **index** of live subscribers by aggregate id / document key, so a record reaches the
  subscribers whose filter matches without looking at the others;
- gives each frame the token of the subscriber's position. A live subscriber's position is the
  head (records its filter drops advance it too), so all subscribers of the same topics share
  one token, and one rendered frame, per record.

A subscriber is either **live** (in the index; the fanout offers it frames without waiting) or
**catching up** (its own position `pos`; the hub's catch-up path feeds it from Kafka, then from
the ring). `join` moves it from catching up to live without a gap or a repeat: it runs on the
event loop without awaiting, so no record is dispatched between the ring's last record it
delivers and its entry in the index. A live subscriber whose buffer is full is not waited for:
it leaves the index at the record it could not take (`detach`) and catches up from there.
"""

from __future__ import annotations

import bisect
import enum
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.web.realtime.mailbox import Mailbox
from streams.web.realtime.records import FeedRecord, TopicPartition
from streams.web.realtime.subscription import Subscription, encode_token


class Closed(enum.Enum):
    """Why a subscriber was closed by the server."""

    SLOW = "slow_client"
    GONE = "disconnected"
    SHUTDOWN = "shutdown"
    REPLACED = "replaced"
    FAILED = "failed"


@dataclass(eq=False)
class Subscriber:
    """One client's subscription on one worker."""

    subscription: Subscription
    topics: tuple[str, ...]
    tps: tuple[TopicPartition, ...]
    transport: str
    """`sse` or `websocket`: how its frames are rendered."""
    mailbox: Mailbox
    secret: bytes
    pos: dict[TopicPartition, int] = field(default_factory=dict)
    """Its position while catching up (a live subscriber's is the head)."""
    live: bool = False
    closed: Closed | None = None
    closed_at: float = 0.0
    on_detach: Callable[[Subscriber], None] = lambda _sub: None
    """Called when it leaves the live feed (its buffer was full)."""
    gone: Callable[[], bool] = lambda: False
    """True once its connection has closed."""
    abort: Callable[[], None] = lambda: None
    """Drop its connection at once (a handler stuck writing to a client that does not read)."""
    task: Any = None
    """Its catch-up task, while it catches up."""

    def accepts(self, record: FeedRecord) -> bool:
        """True when its filters let the record through."""
        sub = self.subscription
        if record.kind == "event":
            return (
                sub.events
                and (not sub.aggregate_id or record.aggregate_id == sub.aggregate_id)
                and (not sub.aggregate_type or record.aggregate_type == sub.aggregate_type)
                and (not sub.event_type or record.event_type == sub.event_type)
            )
        return record.topic in self.topics and (not sub.aggregate_id or record.key == sub.aggregate_id)

    def token(self, positions: dict[TopicPartition, int]) -> str:
        """The resume token of `positions` over its partitions."""
        out: dict[str, dict[int, int]] = {}
        for topic, partition in self.tps:
            out.setdefault(topic, {})[partition] = positions[(topic, partition)]
        return encode_token(out, self.secret)

    def render(self, record: FeedRecord, token: str) -> str | bytes:
        """A record's frame for its transport."""
        return record.sse(token) if self.transport == "sse" else record.text(token)

    def close(self, reason: Closed) -> None:
        """Stop feeding it; its handler gets `CLOSE` next (queued frames are dropped)."""
        if self.closed is None:
            self.closed = reason
            self.closed_at = time.monotonic()
            self.mailbox.close(drop=True)


@dataclass(frozen=True)
class JoinStep:
    """What a catching-up subscriber must do before it can join the live feed."""

    from_kafka: dict[TopicPartition, int] = field(default_factory=dict)
    """Partitions whose position is older than the ring: read [pos, this offset) from Kafka."""
    wait: bool = False
    """Its position is ahead of the head (a token from a worker that has read further)."""
    records: list[FeedRecord] = field(default_factory=list)
    """Ring records to deliver (with waits) before trying again: more than its buffer takes."""
    joined: bool = False


def _frames_bytes(sub: Subscriber, records: list[FeedRecord]) -> int:
    """About the bytes of the frames of `records` for `sub` (the token and SSE lines on top of
    each body; the offers that follow may pass the budget by the estimate's error)."""
    if not records:
        return 0
    overhead = len(sub.render(records[0], sub.token(sub.pos))) - len(records[0].body)
    return sum(len(r.body) for r in records) + overhead * len(records)


class Fanout:
    """The live feed of one context: head, ring, index of live subscribers, dispatch."""

    def __init__(
        self, events_topic: str, secret: bytes, ring_size: int = 4096, *, ring_bytes: int | None = None
    ) -> None:
        self.events_topic = events_topic
        self.secret = secret
        self.ring_size = ring_size
        self.ring_budget = ring_bytes
        """The ring's byte budget (the frames' JSON); None: the count only."""
        self.ring_bytes = 0
        self.head: dict[TopicPartition, int] = {}
        self.ring_start: dict[TopicPartition, int] = {}
        """Per partition: every record from this offset up to the head is in the ring."""
        self._ring: deque[FeedRecord] = deque()
        self._parts: dict[TopicPartition, deque[FeedRecord]] = {}
        self._seq = 0
        self._by_aggregate: dict[str, set[Subscriber]] = {}
        self._any_event: set[Subscriber] = set()
        self._by_key: dict[tuple[str, str], set[Subscriber]] = {}
        self._any_key: dict[str, set[Subscriber]] = {}
        self._pushed: Counter[tuple[str, str]] = Counter()
        """Frames handed to subscribers by (transport, kind), for the metrics."""

    # --- partitions --------------------------------------------------------------------------

    def add_partitions(self, starts: dict[TopicPartition, int]) -> None:
        """Start following partitions from these offsets (the head and the ring start there)."""
        for tp, offset in starts.items():
            if tp not in self.head:
                self.head[tp] = self.ring_start[tp] = offset
                self._parts[tp] = deque()

    def follows(self, tps: Iterable[TopicPartition]) -> bool:
        """True when every partition is followed."""
        return all(tp in self.head for tp in tps)

    # --- the live feed -----------------------------------------------------------------------

    def dispatch(self, records: Iterable[FeedRecord]) -> None:
        """Records in the order they were read: advance the head, keep them in the ring, offer
        each to the live subscribers it matches (each stamped with the dispatch time and the
        number of subscribers it reached, for `streams trace`)."""
        now_ms = int(time.time() * 1000)
        for record in records:
            tp = record.tp
            if record.offset < self.head.get(tp, -1) or tp not in self.head:
                continue  # read twice (the reader restarted behind the head) or not followed
            self._seq += 1
            record.seq = self._seq
            record.published_ms = now_ms
            self.head[tp] = record.offset + 1
            self._keep(record)
            full: list[Subscriber] = []
            rendered: dict[tuple[tuple[str, ...], str], str | bytes] = {}
            tokens: dict[tuple[str, ...], str] = {}
            for sub in self._candidates(record):
                if not sub.accepts(record):
                    continue
                frame = rendered.get((sub.topics, sub.transport))
                if frame is None:
                    token = tokens.get(sub.topics)
                    if token is None:
                        token = tokens[sub.topics] = sub.token(self.head)
                    frame = rendered[(sub.topics, sub.transport)] = sub.render(record, token)
                if sub.mailbox.offer(frame):
                    self._pushed[(sub.transport, record.kind)] += 1
                    record.delivered += 1
                else:
                    full.append(sub)
            for sub in full:
                self.detach(sub, record)

    def _candidates(self, record: FeedRecord) -> list[Subscriber]:
        if record.kind == "event":
            exact = self._by_aggregate.get(record.aggregate_id)
            return [*exact, *self._any_event] if exact else list(self._any_event)
        exact = self._by_key.get((record.topic, record.key))
        any_key = self._any_key.get(record.topic, ())
        return [*exact, *any_key] if exact else list(any_key)

    def _keep(self, record: FeedRecord) -> None:
        self._ring.append(record)
        self._parts[record.tp].append(record)
        self.ring_bytes += len(record.body)
        budget = self.ring_budget
        while len(self._ring) > self.ring_size or (budget is not None and self.ring_bytes > budget):
            old = self._ring.popleft()
            self._parts[old.tp].popleft()
            self.ring_start[old.tp] = old.offset + 1
            self.ring_bytes -= len(old.body)

    # --- joining and leaving -----------------------------------------------------------------

    def join_now(self, sub: Subscriber) -> None:
        """Make a subscriber live at the head ("from now")."""
        sub.pos = {tp: self.head[tp] for tp in sub.tps}
        self._enter(sub)

    def join(self, sub: Subscriber) -> JoinStep:
        """One step of a catching-up subscriber towards the live feed (see the module doc)."""
        behind = {tp: self.ring_start[tp] for tp in sub.tps if sub.pos[tp] < self.ring_start[tp]}
        if behind:
            return JoinStep(from_kafka=behind)
        if any(sub.pos[tp] > self.head[tp] for tp in sub.tps):
            return JoinStep(wait=True)
        missed = sorted(
            (r for tp in sub.tps for r in self._since(tp, sub.pos[tp])), key=lambda r: r.seq
        )  # fmt: skip
        wanted = [r for r in missed if sub.accepts(r)]
        room = sub.mailbox.free_bytes()
        if len(wanted) > sub.mailbox.free() or (room is not None and _frames_bytes(sub, wanted) > room):
            return JoinStep(records=missed)
        for record in missed:  # no await from here to the index: nothing is dispatched between
            sub.pos[record.tp] = record.offset + 1
            if sub.accepts(record):
                sub.mailbox.offer(sub.render(record, sub.token(sub.pos)), force=True)
                self.count(sub, record)
        self._enter(sub)
        return JoinStep(joined=True)

    def _since(self, tp: TopicPartition, offset: int) -> list[FeedRecord]:
        """The ring's records of `tp` from `offset` on (the most recent ones: read backwards)."""
        out = []
        for record in reversed(self._parts[tp]):
            if record.offset < offset:
                break
            out.append(record)
        out.reverse()
        return out

    def kept(self, tp: TopicPartition, offset: int) -> FeedRecord | None:
        """The ring's record at `tp`/`offset` (None: not in the ring)."""
        part = self._parts.get(tp)
        if not part:
            return None
        i = bisect.bisect_left(part, offset, key=lambda r: r.offset)
        return part[i] if i < len(part) and part[i].offset == offset else None

    def _slots(self, sub: Subscriber) -> list[set[Subscriber]]:
        """The index entries a subscriber belongs in (created when missing)."""
        s = sub.subscription
        slots = []
        for topic in sub.topics:
            if topic == self.events_topic:
                if s.aggregate_id:
                    slots.append(self._by_aggregate.setdefault(s.aggregate_id, set()))
                else:
                    slots.append(self._any_event)
            elif s.aggregate_id:
                slots.append(self._by_key.setdefault((topic, s.aggregate_id), set()))
            else:
                slots.append(self._any_key.setdefault(topic, set()))
        return slots

    def _enter(self, sub: Subscriber) -> None:
        sub.live = True
        for slot in self._slots(sub):
            slot.add(sub)

    def detach(self, sub: Subscriber, record: FeedRecord) -> None:
        """Take a live subscriber out of the feed at `record`, which it did not get."""
        self.leave(sub)
        sub.pos = {tp: self.head[tp] for tp in sub.tps}
        sub.pos[record.tp] = record.offset
        sub.on_detach(sub)

    def leave(self, sub: Subscriber) -> None:
        """Take a subscriber out of the index (it may not be in it)."""
        if not sub.live:
            return
        sub.live = False
        for slot in self._slots(sub):
            slot.discard(sub)
        s = sub.subscription
        if s.aggregate_id:  # drop emptied entries, so the index does not keep every id seen
            if not self._by_aggregate.get(s.aggregate_id, True):
                del self._by_aggregate[s.aggregate_id]
            for topic in sub.topics:
                if not self._by_key.get((topic, s.aggregate_id), True):
                    del self._by_key[(topic, s.aggregate_id)]

    def count(self, sub: Subscriber, record: FeedRecord) -> None:
        """Count a frame handed to a subscriber outside `dispatch` (catching up)."""
        self._pushed[(sub.transport, record.kind)] += 1
        record.delivered += 1

    def take_pushed(self) -> Counter[tuple[str, str]]:
        """The frames handed out since the last call, by (transport, kind)."""
        pushed, self._pushed = self._pushed, Counter()
        return pushed

    def live_count(self) -> int:
        """Live subscribers (each counted once)."""
        subs = set(self._any_event)
        for group in (*self._by_aggregate.values(), *self._by_key.values(), *self._any_key.values()):
            subs |= group
        return len(subs)
