"""The bounded buffer in front of one real-time client: at most `size` frames and `max_bytes`
bytes of frames (a frame larger than the byte budget still passes through an empty buffer).

The live feed offers frames without waiting (`offer`: False when the buffer is full, and the
client then leaves the live feed to catch up on its own); the catch-up path waits for room, at
most `GRACE_S` seconds (`put`), after which the client is too slow and is disconnected. The
client's handler takes frames with `get`. A closed mailbox hands out `CLOSE` once its frames
that are still wanted are gone (a close drops the rest).
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import Callable

GRACE_S = 2.0
"""Seconds a full buffer may stay full before the client is dropped as too slow."""


class Signal(enum.Enum):
    """What a mailbox hands out besides frames."""

    KEEPALIVE = "keepalive"
    CLOSE = "close"


Item = str | bytes | Signal


class SlowClient(Exception):
    """The client's buffer stayed full for GRACE_S seconds."""


class Mailbox:
    """A bounded FIFO of rendered frames with one reader (the client's handler)."""

    __slots__ = ("_items", "_room", "_waiter", "bytes", "closed", "direct", "max_bytes", "size")

    def __init__(self, size: int, max_bytes: int | None = None) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0
        """Bytes (characters of text frames) queued now."""
        self._items: deque[Item] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self.closed = False
        self.direct: Callable[[Item], bool] | None = None
        """Hands a frame straight to the connection, if it can take it now (True). Used only
        while nothing is queued and the reader is waiting, so the order stays; it saves waking
        the client's handler for every frame of a live feed."""

    def __len__(self) -> int:
        return len(self._items)

    def free(self) -> int:
        """Frames that fit now."""
        return max(self.size - len(self._items), 0)

    def free_bytes(self) -> int | None:
        """Bytes that fit now (None: no byte budget)."""
        return None if self.max_bytes is None else max(self.max_bytes - self.bytes, 0)

    def fits(self, item: Item) -> bool:
        """True when the frame fits now (a signal always does)."""
        if isinstance(item, Signal):
            return True
        if len(self._items) >= self.size:
            return False
        return self.max_bytes is None or not self._items or self.bytes + len(item) <= self.max_bytes

    def offer(self, item: Item, *, force: bool = False) -> bool:
        """Queue a frame if it fits (never waits); False when full. A closed mailbox takes
        nothing and answers True (the client is going anyway). `force`: past the byte budget
        (a caller that checked the room for a run of frames it estimated)."""
        if self.closed:
            return True
        if not self.fits(item) and not (force and len(self._items) < self.size):
            return False
        if self.direct is not None and not self._items and self._waiter is not None and self.direct(item):
            return True
        self._items.append(item)
        if not isinstance(item, Signal):
            self.bytes += len(item)
        self._wake()
        return True

    async def put(self, item: Item, grace_s: float = GRACE_S) -> None:
        """Queue a frame, waiting up to `grace_s` for room (SlowClient after that)."""
        if self.closed:
            return
        if not self.fits(item):
            await self.wait_room(grace_s, item)
        self.offer(item, force=True)

    async def wait_room(self, grace_s: float = GRACE_S, item: Item = "") -> None:
        """Return once `item` (default: a frame of no size) fits; SlowClient when it does not
        within `grace_s` seconds."""
        while not self.fits(item) and not self.closed:
            self._room = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._room), grace_s)
            except TimeoutError:
                raise SlowClient(
                    f"client buffer of {self.size} messages / {self.max_bytes} bytes full for {grace_s:g}s"
                ) from None
            finally:
                self._room = None

    async def get(self) -> Item:
        """The next frame (or signal), waiting for one."""
        while not self._items:
            if self.closed:
                return Signal.CLOSE
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if not isinstance(item, Signal):
            self.bytes -= len(item)
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)
        return item

    def close(self, *, drop: bool = True) -> None:
        """No more frames: the reader gets `CLOSE` (at once when `drop`, else after what is
        queued)."""
        self.closed = True
        if drop:
            self._items.clear()
            self.bytes = 0
        self._items.append(Signal.CLOSE)
        self._wake()
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
