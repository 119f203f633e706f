"""The web event loop among the stage threads: the GIL's switch interval, and how late the loop runs.

Every stage runs on a thread of its own in the worker's one process, and most of them are busy in
Python (decoding, folding, encoding) while the web server's event loop answers requests and
writes real-time frames. The loop gives the GIL up at every system call (each `select`, each
socket write of a frame) and must then wait for it: CPython lets a waiting thread ask for the GIL
only after the switch interval (5 ms by default), and when several stage threads wait too, the
loop may lose the turn several times. With 200 SSE clients and a worker that falls behind, one
frame write per client per frame made each loop iteration wait that long, and `/health` and
`/metrics` took 1 to 13 s to answer (`make soak`: `health_s` and `scrape_s` in each sample; the
run of 2026-12-07 03:45 lost every scrape after 30 s to a 5 s timeout). A shorter interval
(`STREAMS_SWITCH_INTERVAL_MS`, 1 ms by default) lets the loop in sooner; in a 6-thread
micro-benchmark the p95 of 20 socket writes fell from 127-260 ms at 5 ms to 18-37 ms at 1 ms,
with no less work done by the busy threads. `streams_event_loop_delay_seconds` shows how late the
loop runs a timer: an operator sees a starved loop before the probes time out.
"""

from __future__ import annotations

import asyncio
import sys
import time

from streams import metrics

LOOP_PROBE_S = 0.5
"""How often the loop's delay is measured."""


def set_switch_interval(ms: float) -> bool:
    """Make the GIL change hands every `ms` milliseconds at most (0 or less: Python's default,
    5 ms, left alone). True when it was set."""
    if ms <= 0:
        return False
    sys.setswitchinterval(ms / 1000)
    return True


async def watch_loop_delay(every_s: float = LOOP_PROBE_S) -> None:
    """Forever: sleep `every_s` and set `streams_event_loop_delay_seconds` to how much later than
    asked the running loop woke this task up (its other work and waits for the GIL)."""
    while True:
        asked = time.monotonic()
        await asyncio.sleep(every_s)
        metrics.EVENT_LOOP_DELAY.set(max(time.monotonic() - asked - every_s, 0.0))
