"""The bounded buffer in front of one real-time client.

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

    __slots__ = ("_items", "_room", "_waiter", "closed", "direct", "size")

    def __init__(self, size: int) -> None:
        self.size = size
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

    def offer(self, item: Item) -> bool:
        """Queue a frame if it fits (never waits); False when full. A closed mailbox takes
        nothing and answers True (the client is going anyway)."""
        if self.closed:
            return True
        if len(self._items) >= self.size and not isinstance(item, Signal):
            return False
        if self.direct is not None and not self._items and self._waiter is not None and self.direct(item):
            return True
        self._items.append(item)
        self._wake()
        return True

    async def put(self, item: Item, grace_s: float = GRACE_S) -> None:
        """Queue a frame, waiting up to `grace_s` for room (SlowClient after that)."""
        if self.closed:
            return
        if len(self._items) >= self.size:
            await self.wait_room(grace_s)
        self.offer(item)

    async def wait_room(self, grace_s: float = GRACE_S) -> None:
        """Return once a frame fits; SlowClient when none does within `grace_s` seconds."""
        while len(self._items) >= self.size and not self.closed:
            self._room = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._room), grace_s)
            except TimeoutError:
                raise SlowClient(f"client buffer of {self.size} messages full for {grace_s:g}s") from None
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
        self._items.append(Signal.CLOSE)
        self._wake()
        room = self._room
        if room is not None and not room.done():
            room.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
