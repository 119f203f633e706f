"""Command -> result latency at a steady offered load, through the public client (`make bench`)."""

from __future__ import annotations

import os
import statistics
import threading
import time
import uuid
from typing import Any, NamedTuple

from bench.harness import isolated
from streams.client import CommandClient
from streams.config import Settings
from streams.contexts.orders import AddItem, PlaceOrder
from streams.contexts.orders import context as orders
from streams.kafka.runtime import ContextRuntime
from streams.write.processor import CommandProcessor

COMMANDS = int(os.environ.get("BENCH_LATENCY_COMMANDS", "5000"))
RATE = int(os.environ.get("BENCH_LATENCY_RATE", "1000"))
WARMUP = int(os.environ.get("BENCH_LATENCY_WARMUP", "1000"))
CDF_POINTS = 100
"""A latency distribution is kept as its percentiles 1..99 plus the minimum and the maximum."""


class Latency(NamedTuple):
    """A latency run: p50 and p99 in seconds, and the distribution (`cdf_ms`) for the plots."""

    p50: float
    p99: float
    cdf_ms: list[float]


def cdf_ms(samples: list[float]) -> list[float]:
    """The minimum, the percentiles 1..99 and the maximum of `samples` (seconds), in ms: what
    a result file keeps of a distribution (101 points, ascending)."""
    q = statistics.quantiles(samples, n=CDF_POINTS)
    return [round(v * 1000, 3) for v in (min(samples), *q, max(samples))]


def _timer(samples: list[float], sent_at: float) -> Any:
    return lambda _future: samples.append(time.perf_counter() - sent_at)


def latency(settings: Settings, prefix: str = "", rate: int = RATE) -> Latency:
    """p50, p99 seconds from send to result receipt at a steady offered load of `rate`/s."""
    s = isolated(settings, prefix or f"bench-lat-{uuid.uuid4().hex[:8]}.")
    runtime = ContextRuntime.connect(s, orders)
    processor = CommandProcessor(s, runtime, worker_id="bench-lat")
    processor.ensure_topics()
    thread = threading.Thread(target=processor.run, daemon=True)
    thread.start()
    samples: list[float] = []
    with CommandClient(s, "orders") as client:
        client.execute("warm", PlaceOrder("w", "EUR"), timeout=120)
        interval = 1.0 / rate
        pending = []
        start = time.perf_counter()
        # the first WARMUP commands (fresh topics, a cold broker code path) are not counted
        for j in range(WARMUP + COMMANDS):
            target = start + j * interval
            now = time.perf_counter()
            if target > now:
                time.sleep(target - now)
            sent_at = time.perf_counter()
            measured = j >= WARMUP
            i = j - WARMUP if measured else j
            command = PlaceOrder("c", "EUR") if i < 500 else AddItem("x", 1, 1)
            _, future = client.send(f"{'lat' if measured else 'lat-warm'}-{i % 500}", command)
            assert future is not None
            if measured:
                future.add_done_callback(_timer(samples, sent_at))
            pending.append(future)
        for f in pending:
            f.result(timeout=120)
    processor.stop()
    thread.join(60)
    q = statistics.quantiles(samples, n=100)
    return Latency(q[49], q[98], cdf_ms(samples))
