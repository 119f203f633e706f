"""Running stages in the Faust worker: the one restart loop, and one thread per stage.

Every stage that moves records (command processors, projectors, the sink deriver) runs a
*session*: clients are created, records are consumed until the stage is stopped, and any failure
ends the session. `restart_loop` starts a new session after a pause that doubles up to 15 s while
sessions keep failing, so a broker or registry outage is waited out without busy-looping; a session
that ran `HEALTHY_S` before it failed starts the doubling over (`next_delay`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from mode import Service

log = logging.getLogger(__name__)

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 15.0
HEALTHY_S = 60.0
"""A session that ran this long before failing was healthy: the next pause is the first again,
not the double of one that followed failures long past (the pause doubled over a worker's life,
and one broker restart an hour later cost 8 s of stalled commands on top of the fault)."""


def next_delay(delay: float, ran_s: float) -> tuple[float, float]:
    """(pause before the next session, the pause after that) after a session that failed after
    running `ran_s`, the current pause being `delay`."""
    if ran_s >= HEALTHY_S:
        delay = FIRST_DELAY_S
    return delay, min(delay * 2, MAX_DELAY_S)


def restart_loop(
    name: str,
    session: Callable[[], None],
    stop: threading.Event,
    *,
    on_failure: Callable[[Exception], None] = lambda _exc: None,
    final: tuple[type[Exception], ...] = (),
) -> None:
    """Run `session` until `stop` is set, restarting it with back-off after a failure (the
    back-off starts over after a session that ran `HEALTHY_S`).

    `on_failure` runs after each failure (close clients, count it); exceptions of a `final`
    type are not retried but raised to the caller.
    """
    delay = FIRST_DELAY_S
    while not stop.is_set():
        started = time.monotonic()
        try:
            session()
            delay = FIRST_DELAY_S
        except final:
            raise
        except Exception as exc:
            pause, delay = next_delay(delay, time.monotonic() - started)
            log.exception("%s failed; restarting in %.1fs", name, pause)
            on_failure(exc)
            stop.wait(pause)


class Runnable(Protocol):
    """A stage run by a thread: `run` blocks until `stop` is called."""

    def run(self) -> None:
        """Process until stopped."""

    def stop(self) -> None:
        """Ask `run` to return."""


class Readiness:
    """Which parts of a worker have started: it serves once every expected part has."""

    def __init__(self, *parts: str) -> None:
        self._missing = set(parts)

    def mark(self, part: str) -> None:
        """`part` has started."""
        self._missing.discard(part)

    def missing(self) -> list[str]:
        """The parts not started yet (empty: ready)."""
        return sorted(self._missing)


class ThreadHost(Service):
    """A Faust service running stages in daemon threads, built when the worker starts.

    Subclasses (made by `hosted`) set `label` and `build`, which is blocking (it may wait for the
    registry) and so runs in the executor.
    """

    label: str = "stage"
    join_timeout_s: float = 60.0
    build: Callable[[], list[Runnable]]
    readiness: Readiness | None = None

    def __post_init__(self) -> None:
        self.stages: list[Runnable] = []
        self.threads: list[threading.Thread] = []

    async def on_start(self) -> None:
        loop = asyncio.get_running_loop()
        for stage in await loop.run_in_executor(None, type(self).build):
            name = f"{self.label}-{getattr(stage, 'name', len(self.threads))}"
            thread = threading.Thread(target=stage.run, name=name, daemon=True)
            thread.start()
            self.stages.append(stage)
            self.threads.append(thread)
        log.info("%s: %d stage(s) started", self.label, len(self.stages))
        if self.readiness is not None:
            self.readiness.mark(self.label)

    async def on_stop(self) -> None:
        for stage in self.stages:
            stage.stop()
        loop = asyncio.get_running_loop()
        for thread in self.threads:
            await loop.run_in_executor(None, thread.join, self.join_timeout_s)


def hosted(
    label: str,
    build: Callable[[], list[Runnable]],
    join_timeout_s: float = 60.0,
    readiness: Readiness | None = None,
) -> type[ThreadHost]:
    """A `ThreadHost` class for `app.service(...)` (Faust instantiates service classes itself);
    it marks `label` in `readiness` once started."""
    attributes: dict[str, Any] = {
        "label": label,
        "build": staticmethod(build),
        "join_timeout_s": join_timeout_s,
        "readiness": readiness,
    }
    return type(f"{label.title().replace('-', '')}Host", (ThreadHost,), attributes)
