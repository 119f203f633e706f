"""The telemetry benchmark's devices fleet and its traffic: a deployment running the devices stage
and decider in this process, the registrations and readings it pre-loads, the live producer."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from streams.config import Settings
from streams.contexts.devices import ConfigureThresholds, RegisterDevice, TelemetryReading, context
from streams.contexts.devices.telemetry import TELEMETRY
from streams.kafka.clients import take
from streams.kafka.runtime import ContextRuntime
from streams.windows.intake import WindowBatch
from streams.windows.stage import WindowStage
from streams.wire import headers as h
from streams.wire.topics import partition_for
from streams.write.processor import CommandProcessor

WINDOW_MS = TELEMETRY.spec.size_ms
"""The telemetry window's length."""
GRACE_MS = TELEMETRY.spec.grace_ms
"""The telemetry window's grace after its end."""
HIGH, CLEAR = 95.0, 70.0
"""The temperature every device alerts above, and clears below."""


def settings_for(base: Settings, prefix: str) -> Settings:
    """`base` for the deployment `prefix`: its topic prefix, app id and RocksDB directory."""
    return replace(
        base, topic_prefix=prefix, app_id=prefix.rstrip("."), data_dir=Path(".stack/bench") / prefix
    )


def producer_for(settings: Settings) -> Producer:
    """A batching (linger 20 ms, lz4) producer to the deployment's brokers."""
    return Producer({"bootstrap.servers": settings.bootstrap, "linger.ms": 20, "compression.type": "lz4"})


def produce(producer: Producer, topic: str, key: bytes, value: bytes, **kw: Any) -> None:
    """Produce one record, polling while the producer's queue is full."""
    while True:
        try:
            producer.produce(topic, value, key, **kw)
            return
        except BufferError:
            producer.poll(0.05)


def device_id(i: int) -> str:
    """The id of device number `i`."""
    return f"dev-{i:06d}"


def aligned(ms: int) -> int:
    """The start of the telemetry window holding the time `ms`."""
    return ms - ms % WINDOW_MS


@dataclass
class Fleet:
    """A deployment with the devices stage and decider running in this process."""

    settings: Settings
    runtime: ContextRuntime
    processor: CommandProcessor
    stage: WindowStage
    handled: int = 0
    folded: int = 0
    refused: int = 0
    closed: int = 0
    first_fold: float = 0.0
    last_fold: float = 0.0
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, base: Settings, prefix: str, worker_id: str = "bench-tele") -> Fleet:
        """The fleet of deployment `prefix`, its topics created, counting what its batches do."""
        settings = settings_for(base, prefix)
        runtime = ContextRuntime.connect(settings, context)
        processor = CommandProcessor(settings, runtime, worker_id=worker_id)
        stage = WindowStage(settings, runtime, TELEMETRY, worker_id=worker_id)
        stage.ensure_topics()
        processor.ensure_topics()
        fleet = cls(settings, runtime, processor, stage)
        processor.on_batch = fleet._on_commands
        stage.on_batch = fleet._on_windows
        return fleet

    def _on_commands(self, n: int) -> None:
        with self.lock:
            self.handled += n

    def _on_windows(self, batch: WindowBatch) -> None:
        now = time.perf_counter()
        folded = batch.outcomes.get("folded", 0)
        with self.lock:
            if folded and not self.first_fold:
                self.first_fold = now
            if folded:
                self.last_fold = now
            self.folded += folded
            self.refused += sum(n for k, n in batch.outcomes.items() if k not in ("folded", "table", "late"))
            self.closed += sum(batch.closed.values())

    def start(self, target: Callable[[], None]) -> None:
        """Run `target` (the stage's or the decider's loop) in a daemon thread."""
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self.threads.append(thread)

    def stop(self) -> None:
        """Stop the stage and the decider and join their threads."""
        self.stage.stop()
        self.processor.stop()
        for thread in self.threads:
            thread.join(60)

    def wait(self, check: Callable[[], bool], what: str, timeout: float = 900) -> None:
        """Wait until `check()` holds; TimeoutError naming `what` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{what}: handled {self.handled}, folded {self.folded}, closed {self.closed}"
                )
            time.sleep(0.05)

    def register(self, devices: int) -> None:
        """Pre-load the registrations of `devices` devices; run the decider until it has handled
        them (the stage is started later: it reads the table first)."""
        preload_registrations(self.settings, self.runtime, devices)
        self.decide_registrations(devices)

    def decide_registrations(self, devices: int) -> None:
        """Run the decider until it has handled `devices` devices' pre-loaded registrations."""
        before = self.handled
        if not self.threads:
            self.start(self.processor.run)
        self.wait(lambda: self.handled >= before + 2 * devices, "registrations")


def preload_registrations(settings: Settings, runtime: ContextRuntime, devices: int) -> None:
    """RegisterDevice and ConfigureThresholds (temp: high 95, clear 70, 1 window) per device."""
    codec, topic = runtime.codec, runtime.topics.commands
    producer = producer_for(settings)
    register = codec.encode(RegisterDevice("site", "", 3600))
    thresholds = codec.encode(ConfigureThresholds("temp", HIGH, CLEAR, 1))
    for i in range(devices):
        key = device_id(i).encode()
        for value in (register, thresholds):
            produce(producer, topic, key, value, headers=[(h.COMMAND_ID, str(uuid.uuid4()).encode())])
    producer.flush(120)


def reading_stream(
    runtime: ContextRuntime, devices: int, per_device: int, t0: int, step_ms: int
) -> Iterator[tuple[bytes, bytes, int]]:
    """(key, Avro value, event time): one reading per device every `step_ms`, devices interleaved."""
    codec = runtime.codec
    for r in range(per_device):
        ts = t0 + r * step_ms
        for i in range(devices):
            yield (
                device_id(i).encode(),
                codec.encode(TelemetryReading("temp", 50.0 + (i + r) % 20, ts + i % 1000)),
                ts,
            )


def preload_readings(
    settings: Settings, runtime: ContextRuntime, readings: Iterator[tuple[bytes, bytes, int]], closing_ts: int
) -> int:
    """Pre-load readings, then one reading per partition far enough ahead to close every window."""
    producer = producer_for(settings)
    topic = runtime.topics.window_input(TELEMETRY.name)
    n = 0
    for key, value, ts in readings:
        produce(producer, topic, key, value, timestamp=ts)
        n += 1
    closers = window_closers(settings.partitions)
    codec = runtime.codec
    for key in closers:
        produce(
            producer,
            topic,
            key,
            codec.encode(TelemetryReading("temp", 1.0, closing_ts)),
            timestamp=closing_ts,
        )
    producer.flush(300)
    return n + len(closers)


def window_closers(partitions: int) -> list[bytes]:
    """One device id per partition among the registered ones (devices 0, 1, ... by partition)."""
    found: dict[int, bytes] = {}
    i = 0
    while len(found) < partitions:
        key = device_id(i).encode()
        found.setdefault(partition_for(key, partitions), key)
        i += 1
    return list(found.values())


def raw_consume_rate(settings: Settings, topic: str, expected: int) -> float:
    """Records/s of a bare read_committed confluent-kafka consume of `topic` from the start."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap,
            "group.id": f"bench-raw-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.partitions)])
    done, started = 0, 0.0
    while done < expected:
        batch = [m for m in take(consumer, 10000, 1.0) if m.error() is None]
        if batch and not started:
            started = time.perf_counter()
        done += len(batch)
    elapsed = time.perf_counter() - started
    consumer.close()
    return done / elapsed


def produce_live(prefix: str, rate: int, seconds: int, devices: int, probes: int) -> None:
    """The sustained load's producer (a process of its own, like a real fleet): `rate` readings/s,
    event time = now; probe devices (the first `probes`) send 99.0 at the start of every third
    window of theirs and print when."""
    settings = settings_for(Settings(), prefix)
    runtime = ContextRuntime.connect(settings, context)
    codec = runtime.codec
    producer = Producer({"bootstrap.servers": settings.bootstrap, "linger.ms": 5, "compression.type": "lz4"})
    topic = runtime.topics.window_input(TELEMETRY.name)
    tick = 0.05
    start = time.time()
    sent = 0
    device = 0
    last_report = 0.0
    probed: set[tuple[int, int]] = set()
    while time.time() - start < seconds:
        tick_start = time.time()
        now_ms = int(tick_start * 1000)
        window = aligned(now_ms)
        due = min(int(rate * (tick_start - start)) + 1, rate * seconds)  # catch up, never run ahead
        for _ in range(due - sent):
            i = device % devices
            device += 1
            value = 50.0 + i % 20
            ts = now_ms
            if i < probes and (window // WINDOW_MS) % 3 == i % 3 and (i, window) not in probed:
                probed.add((i, window))
                value, ts = 99.0, now_ms
                print(
                    json.dumps(
                        {
                            "probe": True,
                            "device": device_id(i),
                            "window_start": window,
                            "sent_at": time.time(),
                        }
                    )
                )
            produce(
                producer,
                topic,
                device_id(i).encode(),
                codec.encode(TelemetryReading("temp", value, ts)),
                timestamp=ts,
            )
            sent += 1
        producer.poll(0)
        if tick_start - last_report > 1:
            last_report = tick_start
            print(json.dumps({"sent": sent}), flush=True)
        pause = tick - (time.time() - tick_start)
        if pause > 0:
            time.sleep(pause)
    producer.flush(60)
    elapsed = time.time() - start
    print(json.dumps({"sent": sent}), flush=True)
    print(json.dumps({"done": True, "rate": sent / elapsed}), flush=True)
