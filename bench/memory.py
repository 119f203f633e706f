"""Benchmark (memory): the write-path worker's peak resident memory as its state table grows.

The parent (`measure`) creates a fresh deployment's topics and pre-loads one PlaceOrder command
for each of N distinct aggregates; then a child process (`python -m bench.memory PREFIX
DATA_DIR T1 T2 ...`) runs a CommandProcessor over them, exactly as a worker's handler does, and
prints one JSON line each time the number of handled commands (= aggregates in its RocksDB state
table) reaches a target: VmHWM (peak RSS) and VmRSS from /proc/self/status, and the size of the
RocksDB directory. The child holds no copy of the commands; aggregates live in RocksDB on disk with
an LRU cache of 20,000 objects in front.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from streams.config import Settings
from streams.contexts.orders import PlaceOrder
from streams.contexts.orders import context as orders
from streams.kafka.runtime import ContextRuntime
from streams.write.processor import CommandProcessor


def _status() -> dict[str, int]:
    """VmHWM and VmRSS of this process, in bytes."""
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            out[name] = int(value.split()[0]) * 1024
    return out


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _settings(base: Settings, prefix: str, data_dir: Path) -> Settings:
    return replace(base, topic_prefix=prefix, app_id=prefix.rstrip("."), data_dir=data_dir)


def _place_orders(runtime: ContextRuntime, n: int) -> Iterator[tuple[bytes, bytes]]:
    encoded = [runtime.codec.encode(PlaceOrder(f"customer-{c}", "EUR")) for c in range(997)]
    for i in range(n):
        yield f"mem-{i}".encode(), encoded[i % 997]


def measure(
    base: Settings, targets: list[int], on_progress: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Pre-load max(targets) PlaceOrder commands, run the child, return its samples."""
    prefix = f"benchmem-{uuid.uuid4().hex[:8]}."
    data_dir = Path(".stack/bench") / prefix
    settings = _settings(base, prefix, data_dir)
    runtime = ContextRuntime.connect(settings, orders)
    CommandProcessor(settings, runtime, worker_id="bench-mem").ensure_topics()
    producer = Producer({"bootstrap.servers": settings.bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    total = max(targets)
    for i, (key, value) in enumerate(_place_orders(runtime, total)):
        while True:
            try:
                producer.produce(
                    runtime.topics.commands, value, key, headers=[("command_id", uuid.uuid4().hex.encode())]
                )
                break
            except BufferError:
                producer.poll(0.05)
        if i % 100_000 == 0:
            on_progress(f"pre-loading {i:,}/{total:,} PlaceOrder commands")
    producer.flush(120)
    on_progress("starting the worker process")
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.memory", prefix, str(data_dir), *map(str, targets)],
        stdout=subprocess.PIPE,
        text=True,
    )
    samples: list[dict[str, Any]] = []
    assert child.stdout is not None
    for line in child.stdout:
        record = json.loads(line)
        if "progress" in record:
            on_progress(
                f"worker: {record['progress']:,}/{total:,} aggregates, RSS {record['rss'] / 2**20:,.0f} MiB"
            )
        else:
            samples.append(record)
    if child.wait(timeout=120) != 0:
        raise RuntimeError(f"memory worker exited with {child.returncode}")
    return {"prefix": prefix, "samples": samples}


def _child(prefix: str, data_dir: str, targets: list[int]) -> None:
    settings = _settings(Settings(), prefix, Path(data_dir))
    runtime = ContextRuntime.connect(settings, orders)
    processor = CommandProcessor(settings, runtime, worker_id="bench-mem")
    pending = sorted(targets)
    done = 0
    started = time.perf_counter()
    finished = threading.Event()
    last_progress = 0.0
    emit: list[dict[str, Any]] = [{"at": 0, **_status()}]

    def count(n: int) -> None:
        nonlocal done, last_progress
        done += n
        now = time.perf_counter()
        while pending and done >= pending[0]:
            status = _status()
            emit.append(
                {
                    "at": pending.pop(0),
                    "handled": done,
                    "seconds": now - started,
                    **status,
                    "rocksdb_bytes": _du(processor.state.data_dir),
                }
            )
            print(json.dumps(emit[-1]), flush=True)
        if now - last_progress > 2:
            last_progress = now
            print(json.dumps({"progress": done, "rss": _status()["VmRSS"]}), flush=True)
        if not pending:
            finished.set()

    print(json.dumps(emit[0]), flush=True)
    processor.on_batch = count
    thread = threading.Thread(target=processor.run, daemon=True)
    thread.start()
    finished.wait(timeout=3600)
    processor.stop()
    thread.join(60)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], [int(t) for t in sys.argv[3:]])
    os._exit(0)
