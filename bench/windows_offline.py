"""`PYTHONPATH=. python -P bench/windows_offline.py`: CPU per reading of the window stage's
Python work, no Kafka.

The devices' telemetry (`streams.contexts.devices.telemetry.TELEMETRY`) through a real
`WindowStage`: its intake decides batches of `confluent_kafka.Message` readings, its `_write`
produces the commands, dead letters and changelog into a producer that only counts (a session
that commits at once), its `WindowState` applies the batch to real RocksDB stores, and its
`_count` updates the metrics. BENCH_WINDOWS_DEVICES devices (registered first, through the join
table) send BENCH_WINDOWS_READINGS readings each, one a second, in batches of
BENCH_WINDOWS_BATCH; one reading per partition far ahead then closes every window.

CPU is `time.process_time()`; the best of BENCH_WINDOWS_REPEATS runs is reported, as the machine
is shared. Run as a script (not `-m`) so that `PYTHONPATH` may point at another checkout's
`streams` (`python -m bench.interleave OLD NEW --harness windows`): only the stage's
constructor, `intake.decide`/`drain`, `_write` and `_count` are used.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import Message, TopicPartition

from bench.offline import CountingProducer
from streams.config import Settings
from streams.contexts.devices import DeviceRegistered, TelemetryReading, context
from streams.contexts.devices.telemetry import TELEMETRY
from streams.kafka.runtime import ContextRuntime
from streams.kafka.store import PartitionStore
from streams.windows.stage import WindowStage
from streams.wire import headers as h
from streams.wire.topics import partition_for

DEVICES = int(os.environ.get("BENCH_WINDOWS_DEVICES", "4000"))
READINGS = int(os.environ.get("BENCH_WINDOWS_READINGS", "25"))
BATCH = int(os.environ.get("BENCH_WINDOWS_BATCH", "5000"))
REPEATS = int(os.environ.get("BENCH_WINDOWS_REPEATS", "3"))
PARTITIONS = 4
T0 = 1_767_225_600_000
"""A window boundary (event time of the first readings)."""
LOG_APPEND_TIME = 2


class InstantSession:
    """The stage's transactional session, committing at once into a `CountingProducer`."""

    def __init__(self) -> None:
        self.producer = CountingProducer()
        self.is_open = True

    def begin(self) -> None:
        """Nothing to begin."""

    def send_offsets(self, _offsets: list[TopicPartition]) -> None:
        """Offsets are not kept."""

    def flush(self) -> None:
        """Every record was reported already."""

    def commit(self) -> None:
        """Nothing to commit."""


def records(runtime: ContextRuntime) -> tuple[list[Message], list[Message]]:
    """(the registrations as events, the readings then one closer per partition)."""
    codec, topics = runtime.codec, runtime.topics
    raw = topics.window_input(TELEMETRY.name)
    offsets: dict[tuple[str, int], int] = {}

    def message(topic: str, key: bytes, value: bytes, ts: int, headers: list[Any]) -> Message:
        partition = partition_for(key, PARTITIONS)
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        return Message(
            topic=topic, partition=partition, offset=offset, key=key, value=value, headers=headers,
            timestamp=(LOG_APPEND_TIME, ts),
        )  # fmt: skip

    devices = [f"dev-{i:06d}" for i in range(DEVICES)]
    events = []
    for device in devices:
        headers = [(h.EVENT_TYPE, b"DeviceRegistered"), (h.AGGREGATE_VERSION, b"1")]
        value = codec.encode(DeviceRegistered("plant-1", device, 60))
        events.append(message(topics.events, device.encode(), value, T0, headers))
    readings = []
    for r in range(READINGS):
        ts = T0 + r * 1000
        for i, device in enumerate(devices):
            value = codec.encode(TelemetryReading("temp", 50.0 + (i + r) % 20, ts))
            readings.append(message(raw, device.encode(), value, ts, []))
    closing = T0 + READINGS * 1000 + TELEMETRY.spec.size_ms + TELEMETRY.spec.grace_ms
    closers: dict[int, str] = {}
    for device in devices:
        closers.setdefault(partition_for(device.encode(), PARTITIONS), device)
    for device in closers.values():
        value = codec.encode(TelemetryReading("temp", 1.0, closing))
        readings.append(message(raw, device.encode(), value, closing, []))
    return events, readings


def run(runtime: ContextRuntime, events: list[Message], readings: list[Message]) -> tuple[float, int]:
    """CPU seconds for the stage to take the registrations, then the readings; commands sent."""
    with tempfile.TemporaryDirectory() as directory:
        settings = replace(Settings(), data_dir=Path(directory), partitions=PARTITIONS)
        stage = WindowStage(settings, runtime, TELEMETRY, worker_id="bench", max_batch=BATCH)
        session = InstantSession()
        stage.session = session  # type: ignore[assignment]
        for partition in range(PARTITIONS):
            path = Path(directory) / f"p{partition}"
            stage.state.table.stores[partition] = PartitionStore(path, settings.rocksdb_statistics_on)
        owned = stage.state
        commands = 0

        def commit(batch: Any) -> None:
            nonlocal commands
            if not batch.empty():
                stage._write(batch)
                stage._count(batch)
            commands += len(batch.commands)

        commit(stage.intake.decide(events, stage.state, owned, T0))
        started = time.process_time()
        for i in range(0, len(readings), BATCH):
            chunk = readings[i : i + BATCH]
            _, now = chunk[-1].timestamp()
            batch = stage.intake.decide(chunk, stage.state, owned, now)
            commit(batch)
            while batch.more:
                batch = stage.intake.drain(sorted(batch.more), stage.state, now)
                commit(batch)
        seconds = time.process_time() - started
        stage.state.close_all()
        return seconds, commands


def measure() -> dict[str, Any]:
    """µs of CPU per reading (best of REPEATS), and the windows closed."""
    runtime = ContextRuntime.offline(context, prefix="bench.")
    events, readings = records(runtime)
    run(runtime, events, readings[: BATCH * 2])  # warm-up
    best, commands = min(run(runtime, events, readings) for _ in range(REPEATS))
    return {
        "devices": DEVICES,
        "readings": len(readings),
        "batch": BATCH,
        "commands": commands,
        "cpu_s": best,
        "us_per_reading": best / len(readings) * 1e6,
    }


def profile(out: str) -> None:
    """One run under cProfile; the 25 largest by own time to stdout, the stats to `out`."""
    runtime = ContextRuntime.offline(context, prefix="bench.")
    events, readings = records(runtime)
    profiler = cProfile.Profile()
    profiler.runcall(run, runtime, events, readings)
    profiler.dump_stats(out)
    stats = pstats.Stats(out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "profile":
        profile(sys.argv[2])
    else:
        print(json.dumps(measure(), indent=2))
