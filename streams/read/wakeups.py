"""Waking `min_version` / `min_offset` waiters when a read-side batch commits.

A stage runs in its own thread; the waiters are coroutines of the web server's event loop. Each
waiter takes its partition's current `Signal` before it checks its condition, then awaits it:
the stage thread, after a batch's store write (or a revocation), replaces the partition's signal
with a new one and sets the old one on the loop. A commit between the check and the await is
not lost (the signal taken before the check is the one set), and nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable, Mapping


class Signal:
    """One partition's next commit, as seen from one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.event = asyncio.Event()
        self.changed: frozenset[bytes] | None = None
        """The store keys the commit that set this signal wrote (None: any may have changed,
        or the store went away)."""

    async def wait(self, timeout: float) -> bool:
        """True when the partition committed a batch within `timeout` seconds."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            return False
        return True


class BatchWakeups:
    """Per-partition signals of one stage, set from the stage's thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signals: dict[int, Signal] = {}

    def signal(self, partition: int) -> Signal:
        """The signal the partition's next commit sets (call it on the loop, before checking)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._signals.get(partition)
            if found is None or found.loop is not loop:
                found = self._signals[partition] = Signal(loop)
            return found

    def committed(
        self, partitions: Iterable[int], changed: Mapping[int, Iterable[bytes]] | None = None
    ) -> None:
        """The partitions' stores moved on (a batch, skipped markers, a revocation): wake their
        waiters (any thread). `changed`: the keys written per partition (None: unknown)."""
        with self._lock:
            fired = [(p, s) for p in set(partitions) if (s := self._signals.pop(p, None)) is not None]
        for partition, fired_signal in fired:
            if changed is not None:
                fired_signal.changed = frozenset(changed.get(partition, ()))
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
                fired_signal.loop.call_soon_threadsafe(fired_signal.event.set)
