"""The web event loop among the stage threads: the GIL's switch interval, and how late the loop runs.

Every stage runs on a thread of its own in the worker's one process, and most of them are busy in
Python (decoding, folding, encoding) while the web server's event loop answers requests and
writes real-time frames. The loop gives the GIL up at every system call (each `select`, each
socket write of a frame) and must then wait for it: CPython lets a waiting thread ask for the GIL
only after the switch interval (5 ms by default), and when several stage threads wait too, the
loop may lose the turn several times. With 200 SSE clients (one socket write per frame per
client) and a worker behind its load, `/health` took a median 1.6 s and up to 13 s to answer
(`bench/results/soak-20261207T035306.json`, its `summary`; the run of 03:45 that day lost every
scrape after 30 s to a 5 s timeout). A shorter interval (`STREAMS_SWITCH_INTERVAL_MS`, 1 ms by
default) lets the loop in sooner: the next run, under a load as high (each file has the load
average at start and end), answered in a median 0.08 s, at most 1.0 s
(`soak-20261207T040134.json`), and `python -m bench.switch_interval` measures the effect without
Kafka (`bench/results/switch-interval-*.json`). `streams_event_loop_delay_seconds`
shows how late the loop runs a timer: an operator sees a starved loop before the probes time out.
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
