"""`make bench`: the write path against a bare Kafka loop, in one run on one broker.

a. ceiling: confluent-kafka consume -> transactional produce of the same records, read_committed
b. our write path: the CommandProcessor (decode, RocksDB state, decide, evolve, events + results +
   changelog + offsets in one transaction) over the same pre-loaded commands
latency: command -> result at a steady offered load, through the public client
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from streams.client import CommandClient
from streams.config import Settings
from streams.contexts.orders import AddItem, PlaceOrder
from streams.core.topics import TopicSpec
from streams.processor import CommandProcessor
from streams.runtime import ContextRuntime, ensure_topics, take

console = Console()
N = int(os.environ.get("BENCH_COMMANDS", "100000"))
AGGREGATES = int(os.environ.get("BENCH_AGGREGATES", "10000"))
LATENCY_COMMANDS = int(os.environ.get("BENCH_LATENCY_COMMANDS", "5000"))
LATENCY_RATE = int(os.environ.get("BENCH_LATENCY_RATE", "1000"))


def _commands() -> list[tuple[str, Any]]:
    """Realistic order traffic: each aggregate is placed, then receives items."""
    out: list[tuple[str, Any]] = []
    for i in range(N):
        aggregate = f"order-{i % AGGREGATES}"
        if i < AGGREGATES:
            out.append((aggregate, PlaceOrder(f"customer-{i % 997}", "EUR")))
        else:
            out.append((aggregate, AddItem(f"sku-{i % 50}", 1 + i % 3, 100 + (i % 50) * 7)))
    return out


def _preload(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": settings.bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    for key, value in records:
        while True:
            try:
                producer.produce(topic, value, key, headers=[("command_id", uuid.uuid4().bytes)])
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(60)


def ceiling(settings: Settings, records: list[tuple[bytes, bytes]]) -> float:
    """Records/s of a bare consume -> transactional produce loop (same batching)."""
    run = uuid.uuid4().hex[:8]
    source, sink = f"bench-{run}.in", f"bench-{run}.out"
    ensure_topics(
        settings,
        [TopicSpec(t, settings.partitions, {}) for t in (source, sink)],
    )
    _preload(settings, source, records)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap,
            "group.id": f"bench-{run}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 20,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap,
            "transactional.id": f"bench-{run}",
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
        }
    )
    producer.init_transactions(30)
    consumer.subscribe([source])
    done = 0
    started = 0.0
    while done < len(records):
        batch = [m for m in take(consumer, 1000, 0.1) if m.error() is None]
        if not batch:
            continue
        started = started or time.perf_counter()
        producer.begin_transaction()
        offsets: dict[int, int] = {}
        for m in batch:
            producer.produce(sink, m.value(), m.key(), partition=m.partition(), headers=m.headers())
            offsets[m.partition()] = m.offset() + 1
        producer.send_offsets_to_transaction(
            [TopicPartition(source, p, o) for p, o in offsets.items()],
            consumer.consumer_group_metadata(),
        )
        producer.commit_transaction()
        done += len(batch)
    elapsed = time.perf_counter() - started
    consumer.close()
    return done / elapsed


def write_path(settings: Settings, commands: list[tuple[str, Any]]) -> float:
    """Commands/s of the CommandProcessor over pre-loaded commands (exactly once on)."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    s = replace(settings, topic_prefix=prefix, data_dir=Path(".stack/bench") / prefix)
    runtime = ContextRuntime.connect(s, "orders")
    processor = CommandProcessor(s, runtime, worker_id="bench")
    processor.ensure_topics()
    _preload(s, runtime.topics.commands, [(k.encode(), runtime.codec.encode(c)) for k, c in commands])
    done = 0
    first = 0.0
    finished = threading.Event()

    def count(n: int) -> None:
        nonlocal done, first
        first = first or time.perf_counter() - 0.0
        done += n
        if done >= len(commands):
            finished.set()

    processor.on_batch = count
    thread = threading.Thread(target=processor.run, daemon=True)
    thread.start()
    finished.wait(timeout=1800)
    elapsed = time.perf_counter() - first
    processor.stop()
    thread.join(60)
    return done / elapsed


def _timer(samples: list[float], sent_at: float) -> Any:
    return lambda _future: samples.append(time.perf_counter() - sent_at)


def latency(settings: Settings) -> tuple[float, float]:
    """p50, p99 seconds from send to result receipt at a steady offered load."""
    prefix = f"bench-lat-{uuid.uuid4().hex[:8]}."
    s = replace(settings, topic_prefix=prefix, data_dir=Path(".stack/bench") / prefix)
    runtime = ContextRuntime.connect(s, "orders")
    processor = CommandProcessor(s, runtime, worker_id="bench-lat")
    processor.ensure_topics()
    thread = threading.Thread(target=processor.run, daemon=True)
    thread.start()
    samples: list[float] = []
    with CommandClient(s, "orders") as client:
        client.execute("warm", PlaceOrder("w", "EUR"), timeout=120)
        interval = 1.0 / LATENCY_RATE
        pending = []
        start = time.perf_counter()
        for i in range(LATENCY_COMMANDS):
            target = start + i * interval
            now = time.perf_counter()
            if target > now:
                time.sleep(target - now)
            sent_at = time.perf_counter()
            command = PlaceOrder("c", "EUR") if i < 500 else AddItem("x", 1, 1)
            _, future = client.send(f"lat-{i % 500}", command)
            assert future is not None
            future.add_done_callback(_timer(samples, sent_at))
            pending.append(future)
        for f in pending:
            f.result(timeout=120)
    processor.stop()
    thread.join(60)
    q = statistics.quantiles(samples, n=100)
    return q[49], q[98]


def main() -> None:
    """Run every scenario and print the table (JSON under bench-results/)."""
    settings = Settings()
    commands = _commands()
    runtime = ContextRuntime.connect(settings, "orders")
    records = [(k.encode(), runtime.codec.encode(c)) for k, c in commands]
    size = statistics.mean(len(v) for _, v in records)
    results: dict[str, Any] = {"commands": N, "aggregates": AGGREGATES, "record_bytes": size}
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("a. bare consume→transactional produce loop", total=3)
        results["a_ceiling_rps"] = ceiling(settings, records)
        progress.update(task, advance=1, description="b. our write path (exactly once)")
        results["b_write_path_cps"] = write_path(settings, commands)
        progress.update(task, advance=1, description="command→result latency")
        p50, p99 = latency(settings)
        results["latency_p50_ms"], results["latency_p99_ms"] = p50 * 1000, p99 * 1000
        progress.update(task, advance=1)
    results["ratio_b_over_a"] = results["b_write_path_cps"] / results["a_ceiling_rps"]
    results["commit_interval_ms"] = settings.commit_interval_s * 1000
    table = Table(title=f"write path, {N:,} commands over {AGGREGATES:,} aggregates ({size:.0f} B)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("a. ceiling: bare consume→transactional produce", f"{results['a_ceiling_rps']:,.0f} rec/s")
    table.add_row("b. write path, exactly once", f"{results['b_write_path_cps']:,.0f} cmd/s")
    table.add_row("b / a", f"{results['ratio_b_over_a']:.2f}")
    table.add_row(f"latency p50 at {LATENCY_RATE}/s", f"{results['latency_p50_ms']:.1f} ms")
    table.add_row(f"latency p99 at {LATENCY_RATE}/s", f"{results['latency_p99_ms']:.1f} ms")
    console.print(table)
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    path = out / f"write-path-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()
