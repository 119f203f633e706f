"""Benchmark (telemetry): the devices fleet through the window stage and the decider.

`python -m bench.telemetry` runs three scenarios on the local stack (also step `telemetry` of
`make bench`), each in a deployment of its own (topic prefix, groups, RocksDB directory):

1. capacity: 10,000 devices registered (thresholds on every device), then 300,000 readings
   pre-loaded (30 s of event time, one reading a second per device); a `WindowStage` and the
   devices `CommandProcessor` run in this process. Readings/s from the stage's first batch to
   the decider's last window command (end to end), the stage alone, and a bare `read_committed`
   consume of the same topic for the ratio.
2. sustained: a producer process offers 10,000 readings/s (one a second from each of the
   10,000 devices, event time = now) for 60 s; readings/s folded while it runs, the largest
   backlog, and the latency from a breaching reading (sent at the start of its window by one of
   100 probe devices) to its `AlertRaised` event on the log, minus the window length.
3. memory: a child process runs the stage and the decider over 100,000 devices (4 readings
   each, 2 windows) and reports its peak RSS (VmHWM) as the state grows.

Sizes: BENCH_TELEMETRY_DEVICES, _READINGS, _RATE, _SECONDS, _PROBES, _MEMORY_DEVICES.
The fleet, its pre-loaded traffic and the live producer are in `bench/fleet.py`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_END, Consumer, TopicPartition

from bench.fleet import (
    GRACE_MS,
    WINDOW_MS,
    Fleet,
    aligned,
    preload_readings,
    preload_registrations,
    produce_live,
    raw_consume_rate,
    reading_stream,
    settings_for,
    window_closers,
)
from bench.harness import drop
from streams.config import Settings
from streams.contexts.devices import context
from streams.contexts.devices.telemetry import TELEMETRY
from streams.kafka.clients import take
from streams.kafka.runtime import ContextRuntime
from streams.windows.stage import WindowStage
from streams.wire import headers as h
from streams.write.processor import CommandProcessor

DEVICES = int(os.environ.get("BENCH_TELEMETRY_DEVICES", "10000"))
READINGS = int(os.environ.get("BENCH_TELEMETRY_READINGS", "300000"))
RATE = int(os.environ.get("BENCH_TELEMETRY_RATE", "10000"))
SECONDS = int(os.environ.get("BENCH_TELEMETRY_SECONDS", "60"))
PROBES = int(os.environ.get("BENCH_TELEMETRY_PROBES", "100"))
MEMORY_DEVICES = [
    int(n) for n in os.environ.get("BENCH_TELEMETRY_MEMORY_DEVICES", "10000,100000").split(",") if n
]
ONLY = set(os.environ.get("BENCH_TELEMETRY_ONLY", "capacity,sustained,memory").split(","))
"""The scenarios to run (sustained runs in capacity's deployment, so it runs capacity too)."""


def _status() -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmHWM", "VmRSS"):
            out[name] = int(value.split()[0]) * 1024
    return out


# --- 1. capacity ----------------------------------------------------------------------------------


def capacity(base: Settings, results: dict[str, Any], prefix: str) -> Fleet:
    """Readings/s through the stage and the decider over a pre-loaded backlog."""
    fleet = Fleet.create(base, prefix)
    fleet.register(DEVICES)
    per_device = max(1, READINGS // DEVICES)
    t0 = aligned(int(time.time() * 1000) - 3_600_000)
    sent = preload_readings(
        fleet.settings,
        fleet.runtime,
        reading_stream(fleet.runtime, DEVICES, per_device, t0, 1000),
        t0 + per_device * 1000 + WINDOW_MS + GRACE_MS,
    )
    windows = DEVICES * len({(t0 + r * 1000) // WINDOW_MS for r in range(per_device)})
    handled_before = fleet.handled
    fleet.start(fleet.stage.run)
    fleet.wait(lambda: fleet.folded + fleet.refused >= sent, "readings folded")
    stage_done = fleet.last_fold
    fleet.wait(lambda: fleet.handled - handled_before >= windows, "window commands decided")
    done = time.perf_counter()
    readings = sent - len(window_closers(fleet.settings.partitions))
    results.update(
        telemetry_devices=DEVICES,
        telemetry_readings=readings,
        telemetry_windows=windows,
        telemetry_refused=fleet.refused,
        telemetry_stage_rps=fleet.folded / (stage_done - fleet.first_fold),
        telemetry_end_to_end_rps=readings / (done - fleet.first_fold),
        telemetry_decider_windows_per_s=windows / (done - fleet.first_fold),
    )
    results["telemetry_raw_consume_rps"] = raw_consume_rate(fleet.settings, fleet.stage.input, sent)
    results["telemetry_ratio_end_to_end_over_raw"] = (
        results["telemetry_end_to_end_rps"] / results["telemetry_raw_consume_rps"]
    )
    results["telemetry_ratio_stage_over_raw"] = (
        results["telemetry_stage_rps"] / results["telemetry_raw_consume_rps"]
    )
    return fleet


# --- 2. sustained, with breach -> alert latency ------------------------------------------------


def sustained(fleet: Fleet, results: dict[str, Any]) -> None:
    """An offered 10,000 readings/s from a producer process, live; probes measure breach -> alert."""
    alerts: dict[tuple[str, int], float] = {}
    stop = threading.Event()
    events = fleet.runtime.topics.events

    def follow() -> None:
        consumer = Consumer(
            {"bootstrap.servers": fleet.settings.bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:6]}",
             "isolation.level": "read_committed", "enable.auto.commit": False, "fetch.wait.max.ms": 10}
        )  # fmt: skip
        consumer.assign([TopicPartition(events, p, OFFSET_END) for p in range(fleet.settings.partitions)])
        while not stop.is_set():
            for msg in take(consumer, 5000, 0.2):
                if msg.error() is None and h.as_dict(msg.headers()).get(h.EVENT_TYPE) == "AlertRaised":
                    event = fleet.runtime.codec.decode(msg.value()).message
                    alerts[(msg.key().decode(), event.window_start)] = time.time()
        consumer.close()

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    time.sleep(2)
    folded_at_start = fleet.folded
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.telemetry", "produce", fleet.settings.topic_prefix, str(RATE),
         str(SECONDS), str(DEVICES), str(PROBES)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None
    probes: list[dict[str, Any]] = []
    backlog, produced, started, ended = 0, 0, 0.0, 0.0
    folded_at_end = 0
    for line in child.stdout:
        record = json.loads(line)
        if "probe" in record:
            probes.append(record)
        elif "sent" in record:
            produced = record["sent"]
            started = started or time.perf_counter()
            backlog = max(backlog, produced - (fleet.folded - folded_at_start))
        elif "done" in record:
            ended = time.perf_counter()
            folded_at_end = fleet.folded - folded_at_start
            results["telemetry_offered_rps"] = record["rate"]
    child.wait(60)
    drained = time.perf_counter()
    fleet.wait(lambda: fleet.folded - folded_at_start >= produced, "sustained readings folded", timeout=300)
    drained = time.perf_counter() - drained
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(alerts) < len(probes):
        time.sleep(0.5)
    stop.set()
    follower.join(10)
    latencies = [
        alerts[(p["device"], p["window_start"])] - p["sent_at"] - WINDOW_MS / 1000
        for p in probes
        if (p["device"], p["window_start"]) in alerts
    ]
    after_close = [
        alerts[(p["device"], p["window_start"])] - (p["window_start"] + WINDOW_MS + GRACE_MS) / 1000
        for p in probes
        if (p["device"], p["window_start"]) in alerts
    ]
    results.update(
        telemetry_sustained_seconds=SECONDS,
        telemetry_sustained_produced=produced,
        telemetry_sustained_folded_rps=folded_at_end / (ended - started) if ended > started else 0.0,
        telemetry_sustained_max_backlog=backlog,
        telemetry_sustained_drain_s=drained,
        telemetry_probes=len(probes),
        telemetry_alerts_seen=len(latencies),
    )
    if len(latencies) >= 2:
        q = statistics.quantiles(latencies, n=100)
        results["telemetry_alert_p50_minus_window_ms"] = q[49] * 1000
        results["telemetry_alert_p99_minus_window_ms"] = q[98] * 1000
        q = statistics.quantiles(after_close, n=100)
        results["telemetry_alert_p50_after_close_ms"] = q[49] * 1000
        results["telemetry_alert_p99_after_close_ms"] = q[98] * 1000


# --- 3. memory ----------------------------------------------------------------------------------


MEMORY_READINGS = 4
"""Readings per device in the memory scenario (4 s apart: 2 windows per device)."""


def memory(base: Settings, results: dict[str, Any], prefixes: list[str]) -> None:
    """Peak RSS of a process running the stage and the decider, for each device count of
    BENCH_TELEMETRY_MEMORY_DEVICES (a deployment each; this process pre-loads the records)."""
    results["telemetry_memory"] = []
    for devices, deployment in zip(MEMORY_DEVICES, prefixes, strict=True):
        settings = settings_for(base, deployment)
        runtime = ContextRuntime.connect(settings, context)
        WindowStage(settings, runtime, TELEMETRY, worker_id="bench-mem").ensure_topics()
        CommandProcessor(settings, runtime, worker_id="bench-mem").ensure_topics()
        preload_registrations(settings, runtime, devices)
        t0 = aligned(int(time.time() * 1000) - 3_600_000)
        readings = reading_stream(runtime, devices, MEMORY_READINGS, t0, 4000)
        sent = preload_readings(settings, runtime, readings, t0 + 16_000 + WINDOW_MS + GRACE_MS)
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.telemetry", "memory", deployment, str(devices), str(sent)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdout is not None
        samples = [json.loads(line) for line in child.stdout]
        if child.wait(120) != 0:
            raise RuntimeError(f"memory child exited with {child.returncode}")
        results["telemetry_memory"].append(
            {"devices": devices, "peak_rss": max(s["VmHWM"] for s in samples), "samples": samples}
        )


def _memory_child(prefix: str, devices: int, sent: int) -> None:
    """Run the decider over the registrations, then the stage over the readings (pre-loaded by
    the parent), printing VmHWM/VmRSS and the RocksDB size along the way."""
    fleet = Fleet.create(Settings(), prefix, worker_id="bench-mem")

    def sample(at: str) -> None:
        data = fleet.settings.data_dir
        disk = sum(f.stat().st_size for f in data.rglob("*") if f.is_file()) if data.exists() else 0
        print(json.dumps({"at": at, "devices": devices, **_status(), "rocksdb_bytes": disk}), flush=True)

    sample("start")
    fleet.decide_registrations(devices)
    sample("registered")
    before = fleet.handled
    fleet.start(fleet.stage.run)
    marks = [sent // 4, sent // 2, 3 * sent // 4]
    while fleet.folded + fleet.refused < sent:
        if marks and fleet.folded >= marks[0]:
            sample(f"folded {marks.pop(0):,}")
        time.sleep(0.2)
    sample("all folded")
    fleet.wait(lambda: fleet.handled - before >= devices * 2, "memory windows decided")
    sample("all windows decided")
    fleet.stop()


def prefixes_of(run_id: str) -> list[str]:
    """The deployments' topic prefixes of one run (capacity and sustained, memory)."""
    return [f"bench-{run_id}-tele.", *(f"bench-{run_id}-telemem{n}." for n in MEMORY_DEVICES)]


def run(
    base: Settings, results: dict[str, Any], prefixes: list[str], on_step: Callable[[str], None] = print
) -> None:
    """Every scenario of BENCH_TELEMETRY_ONLY (default all three), in the deployments `prefixes`."""
    if "capacity" in ONLY or "sustained" in ONLY:
        on_step(f"telemetry capacity: {DEVICES:,} devices, {READINGS:,} readings")
        fleet = capacity(base, results, prefixes[0])
        try:
            if "sustained" in ONLY:
                on_step(f"telemetry sustained: {RATE:,} readings/s offered for {SECONDS} s")
                sustained(fleet, results)
        finally:
            fleet.stop()
    if "memory" not in ONLY:
        return
    on_step(f"telemetry memory: {', '.join(f'{n:,}' for n in MEMORY_DEVICES)} devices")
    memory(base, results, prefixes[1:])


def rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """The table rows of the telemetry figures present in `results`."""
    spec = [
        ("telemetry: window stage + decider, end to end", "telemetry_end_to_end_rps", "{:,.0f} readings/s"),
        ("   the window stage alone", "telemetry_stage_rps", "{:,.0f} readings/s"),
        ("   windows decided", "telemetry_decider_windows_per_s", "{:,.0f} windows/s"),
        ("   raw read_committed consume, same topic", "telemetry_raw_consume_rps", "{:,.0f} records/s"),
        ("   end to end / raw", "telemetry_ratio_end_to_end_over_raw", "{:.3f}"),
        ("   stage / raw", "telemetry_ratio_stage_over_raw", "{:.3f}"),
        ("telemetry sustained: offered", "telemetry_offered_rps", "{:,.0f} readings/s"),
        ("   folded while offered", "telemetry_sustained_folded_rps", "{:,.0f} readings/s"),
        ("   largest backlog", "telemetry_sustained_max_backlog", "{:,.0f} readings"),
        ("   breach → AlertRaised minus window, p50", "telemetry_alert_p50_minus_window_ms", "{:,.0f} ms"),
        ("   breach → AlertRaised minus window, p99", "telemetry_alert_p99_minus_window_ms", "{:,.0f} ms"),
        (
            "   window close (end + grace) → AlertRaised, p99",
            "telemetry_alert_p99_after_close_ms",
            "{:,.0f} ms",
        ),
    ]
    out = [(label, fmt.format(results[key])) for label, key, fmt in spec if key in results]
    for measured in results.get("telemetry_memory", []):
        out.append(
            (
                f"telemetry memory: peak RSS, {measured['devices']:,} devices",
                f"{measured['peak_rss'] / 2**20:,.0f} MiB",
            )
        )
    return out


def main() -> None:
    """`python -m bench.telemetry`: every scenario, a table, and JSON under bench-results/."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    settings = Settings()
    results: dict[str, Any] = {
        "load_avg_at_start": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "complete": False,
    }
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    path = out / f"telemetry-{time.strftime('%Y%m%dT%H%M%S')}.json"
    prefixes = prefixes_of(uuid.uuid4().hex[:8])
    try:
        run(settings, results, prefixes, console.log)
        results["complete"] = True
    finally:
        results["load_avg_at_end"] = os.getloadavg()[0]
        path.write_text(json.dumps(results, indent=2))
        if os.environ.get("BENCH_KEEP_TOPICS") != "1":
            drop(settings, prefixes)
    table = Table(title=f"telemetry ({settings.partitions} partitions)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for label, value in rows(results):
        table.add_row(label, value)
    console.print(table)
    console.print(f"written to {path}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "produce":
        produce_live(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    elif len(sys.argv) > 1 and sys.argv[1] == "memory":
        _memory_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        os._exit(0)
    else:
        main()
