"""`python -m bench.soak` (`make soak`): one worker under steady mixed load for a long time; does
its memory stay flat?

One worker process of its own deployment (orders and devices, read side and window stages on,
sinks off) gets, for `SOAK_SECONDS` (900):
- `SOAK_COMMANDS_PER_S` (1,000) orders commands with distinct command ids, over a pool of
  `SOAK_ORDERS` orders placed during the warm-up (an item added, then removed: bounded states);
- `SOAK_READINGS_PER_S` (5,000) telemetry readings from `SOAK_DEVICES` registered devices, from
  a producer process of its own (`bench.fleet.produce_live`, as the telemetry benchmark);
- `SOAK_SSE_CLIENTS` (200) SSE clients, each following one order of the pool
  (`bench.realtime.SseClient`).

Every `SOAK_SAMPLE_SECONDS` (10) it samples the worker's RSS, open files and threads (from
/proc), what was sent and received, the worker's `streams_idempotency_ids` and the bytes its
bounded caches hold (`CACHE_GAUGES`: documents, aggregates, the real-time ring, RocksDB's block
cache), so a second fit of RSS less those caches tells their filling from a leak. The worker's
idempotency window is `SOAK_IDEMPOTENCY_WINDOW_MS` (60 s), so the run reaches the window's
steady state instead of measuring the window filling (with the 7-day default, the ids of the
whole run stay remembered in RocksDB, by design). For the same reason the worker's configurable
caches get `SOAK_CACHE_BYTES` (4 MiB) each and its RocksDB block cache `SOAK_BLOCK_CACHE_BYTES`
(32 MiB), so they are full within the warm-up (0: the worker's defaults, which take longer than
a run to fill). `SOAK_TRACEMALLOC=N` and `SOAK_JEMALLOC_PROFILE=1` name what grew, in Python and
in C (`bench.heap_growth`).

Verdict: after `SOAK_WARMUP_SECONDS` (300), the least-squares slope of RSS over time is below
`SOAK_MAX_SLOPE_MIB_PER_MIN` (1.0). Writes `SOAK_OUT` (bench/results)/soak-<time>.json, with the
commit, versions and load it ran under (`bench.provenance`), and, when matplotlib
is installed (the `test` extra), a PNG plot beside it (`python -m bench.soak plot <json>`
draws it again); exits 1 when the verdict fails (unless `SOAK_FAIL_ON_VERDICT=0`).

`make soak-short` (90 s) shows that the soak runs end to end and writes its curve; its verdict is
informational: within 90 s the worker is still warming up (the idempotency window, RocksDB's
memtables and block cache, the caches filling), so only the full run's slope judges growth.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fleet import preload_registrations
from bench.heap_growth import SnapshotTaker, jemalloc_env
from bench.provenance import provenance
from bench.realtime import Receipts, SseClient, open_all, proc_status, raise_fd_limit
from streams.client import CommandClient
from streams.contexts.devices import context as devices
from streams.contexts.devices.telemetry import TELEMETRY
from streams.contexts.orders import AddItem, PlaceOrder, RemoveItem
from streams.kafka.runtime import ContextRuntime, ensure_topics
from tests.integration.workers import Deployment


def _setting(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class SoakConfig:
    """The soak's settings (environment variables `SOAK_*`)."""

    seconds: int = int(_setting("SOAK_SECONDS", "900"))
    warmup_seconds: int = int(_setting("SOAK_WARMUP_SECONDS", "300"))
    sample_seconds: float = float(_setting("SOAK_SAMPLE_SECONDS", "10"))
    commands_per_s: int = int(_setting("SOAK_COMMANDS_PER_S", "1000"))
    readings_per_s: int = int(_setting("SOAK_READINGS_PER_S", "5000"))
    sse_clients: int = int(_setting("SOAK_SSE_CLIENTS", "200"))
    orders: int = int(_setting("SOAK_ORDERS", "2000"))
    devices: int = int(_setting("SOAK_DEVICES", "1000"))
    idempotency_window_ms: int = int(_setting("SOAK_IDEMPOTENCY_WINDOW_MS", "60000"))
    max_slope_mib_per_min: float = float(_setting("SOAK_MAX_SLOPE_MIB_PER_MIN", "1.0"))
    tracemalloc_frames: int = int(_setting("SOAK_TRACEMALLOC", "0"))
    """N > 0: the worker traces Python allocations (N frames each) and the result names the lines
    whose allocations grew between the end of the warm-up and the end (`memory_growth.python`)."""
    jemalloc_profile: bool = _setting("SOAK_JEMALLOC_PROFILE", "0") == "1"
    """1: the worker runs on jemalloc with its heap profiler on (`bench.heap_growth.jemalloc_env`)
    and the result names the C functions whose live allocations grew between the end of the
    warm-up and the end (`memory_growth.c_heap`); the heap gauges then read jemalloc's statistics."""
    scrape_timeout_s: float = float(_setting("SOAK_SCRAPE_TIMEOUT_S", "30"))
    """How long a sample waits for the worker's /metrics (the time it took is in each sample)."""
    cache_bytes: int = int(_setting("SOAK_CACHE_BYTES", str(4 * 1024 * 1024)))
    """The byte budget the worker gets for each of its configurable caches (each view version's
    documents, the write side's aggregates, each context's real-time ring, each window stage's
    decoded state); 0: the worker's defaults. With the defaults (16 + 64 + 64 MiB, a few hundred
    MiB in all) the caches fill slowly for longer than a run lasts (new windows are new
    documents), so the slope after the warm-up would measure them filling up to their budgets,
    not what no budget bounds."""
    block_cache_bytes: int = int(_setting("SOAK_BLOCK_CACHE_BYTES", str(32 * 1024 * 1024)))
    """The worker's RocksDB block cache (`STREAMS_ROCKSDB_BLOCK_CACHE_BYTES`; half of it the
    memtables' budget); 0: the worker's default (64 MiB), whose data half fills at the rate reads
    bring new blocks, for longer than a warm-up."""
    fail_on_verdict: bool = _setting("SOAK_FAIL_ON_VERDICT", "1") == "1"
    """0: exit 0 whatever the verdict (the short form: its run is mostly warm-up, so its slope
    measures the caches filling, not a leak)."""


class FrameCounter(Receipts):
    """Counts the event frames the SSE clients receive (keeps no receipt times)."""

    def __init__(self) -> None:
        super().__init__()
        self.frames = 0

    def saw(self, chunk: bytes, carry: bytes) -> bytes:
        data = carry + chunk
        complete = data.rfind(b"\n") + 1  # a frame's line is counted once it is whole
        self.frames += data.count(b'"event_id"', 0, complete)
        return data[complete:]


@dataclass
class Sent:
    """What the load generators have sent so far."""

    commands: int = 0
    readings: int = 0
    reading_rate: float = 0.0
    errors: list[str] = field(default_factory=list)


def rss_fit(
    samples: list[dict[str, Any]], after_s: float, less_caches: bool = False
) -> dict[str, float] | None:
    """The least-squares line of RSS (MiB) over time (minutes) through the samples after
    `after_s` (None: fewer than 3); `less_caches`: of RSS less the bytes the worker's bounded
    caches hold (`CACHE_GAUGES`), which says whether the growth is those caches filling."""
    points = [
        (s["t_s"] / 60, (s["rss"] - (s.get("caches_bytes", 0) if less_caches else 0)) / 2**20)
        for s in samples
        if s["t_s"] >= after_s and (not less_caches or s.get("caches_bytes", -1) >= 0)
    ]
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_r = sum(r for _, r in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    slope = sum((t - mean_t) * (r - mean_r) for t, r in points) / var
    return {"slope_mib_per_min": round(slope, 3), "intercept_mib": mean_r - slope * mean_t, "points": n}


def open_files(pid: int) -> int:
    """File descriptors the process holds."""
    return len(os.listdir(f"/proc/{pid}/fd"))


CACHE_GAUGES = (
    "streams_view_document_cache_bytes",
    "streams_write_cache_bytes",
    "streams_realtime_ring_bytes",
    "streams_window_cache_bytes",
    "streams_rocksdb_block_cache_bytes",
)
"""The worker's bounded caches, each with a byte budget: RSS grows while they fill."""


MEMORY_GAUGES: dict[str, Callable[[str], str]] = {
    "streams_malloc_bytes": lambda line: "malloc_" + line.split('kind="', 1)[1].split('"', 1)[0],
    "streams_python_traced_bytes": lambda _line: "python_traced",
    "streams_event_loop_delay_seconds": lambda _line: "loop_delay_s",
}
"""Where the worker's memory is (streams/diagnostics.py): sample keys malloc_in_use, malloc_free,
malloc_mmapped and python_traced, by metric name; and how late its event loop runs
(`loop_delay_s`, streams/scheduling.py)."""
SUMMED_GAUGES = {
    "streams_consumer_fetch_queue_bytes": "fetch_queues",
    "streams_rocksdb_memtable_bytes": "rocksdb_memtables",
    "streams_realtime_mailbox_bytes": "realtime_mailboxes",
    "streams_rocksdb_block_cache_pinned_bytes": "rocksdb_pinned",
    "streams_rocksdb_write_buffer_bytes": "rocksdb_write_buffers",
    "streams_rocksdb_table_readers_bytes": "rocksdb_table_readers",
    "streams_rocksdb_live_versions": "rocksdb_live_versions",
    "streams_rocksdb_sst_files": "rocksdb_sst_files",
}
"""Summed over their series: the records every group member fetched ahead of its stage, RocksDB's
memtables, the frames waiting in the real-time clients' mailboxes, and what RocksDB holds besides
its data blocks (pinned cache entries, write buffers, table readers, live versions, SST files)."""
LAG = "streams_consumer_lag_records"
"""Summed per group (`lag` in a sample): whether each stage keeps up with the offered load."""


def _label(line: str, name: str) -> str:
    return line.split(f'{name}="', 1)[1].split('"', 1)[0]


def parse_gauges(text: str) -> dict[str, Any]:
    """The soak's figures from a /metrics text: `idempotency_ids` (summed over contexts),
    `caches_bytes` (the caches of `CACHE_GAUGES`; `caches`: each of them), the `MEMORY_GAUGES`
    and `SUMMED_GAUGES`, and `lag`: the consumer lag summed per group."""
    totals: dict[str, Any] = {"idempotency_ids": 0.0, "caches": {}, "lag": {}}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        value = float(line.rsplit(" ", 1)[1]) if name else 0.0
        if name == "streams_idempotency_ids":
            totals["idempotency_ids"] += value
        elif name in CACHE_GAUGES:
            cache = name.removeprefix("streams_").removesuffix("_bytes")
            totals["caches"][cache] = totals["caches"].get(cache, 0.0) + value
        elif name in SUMMED_GAUGES:
            key = SUMMED_GAUGES[name]
            totals[key] = totals.get(key, 0.0) + value
        elif name in MEMORY_GAUGES:
            totals[MEMORY_GAUGES[name](line)] = value
        elif name == LAG:
            group = _label(line, "group")
            totals["lag"][group] = totals["lag"].get(group, 0) + int(value)
    totals["caches_bytes"] = sum(totals["caches"].values())
    return totals


def timed_get(url: str, timeout: float) -> tuple[bytes | None, float]:
    """GET `url`: its body (None: no answer within `timeout`, or an error) and the seconds taken."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: bytes | None = response.read()
    except OSError:
        body = None
    return body, round(time.monotonic() - started, 3)


def worker_gauges(url: str, timeout: float) -> dict[str, Any]:
    """`parse_gauges` of the worker's /metrics, with `scrape_s`, the seconds /metrics took to
    answer, and `health_s`, those of /health asked just before (the event loop's responsiveness
    alone: /health renders nothing). A scrape that fails or takes longer than `timeout` leaves
    `idempotency_ids` and `caches_bytes` at -1."""
    _, health_s = timed_get(f"{url}/health", timeout)
    body, scrape_s = timed_get(f"{url}/metrics", timeout)
    timing = {"health_s": health_s, "scrape_s": scrape_s}
    if body is None:
        return {"idempotency_ids": -1, "caches_bytes": -1, **timing}
    return {**parse_gauges(body.decode()), **timing}


def smaps_rollup(pid: int) -> dict[str, int]:
    """The resident memory of process `pid` by kind (bytes): `rss_anon` (heaps, mappings of
    allocations) and `rss_file` (mapped files: code, RocksDB's tables when mapped)."""
    out: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in ("Anonymous", "Rss") and value.strip().endswith("kB"):
            out["rss_anon" if name == "Anonymous" else "rss_total"] = int(value.split()[0]) * 1024
    if "rss_total" in out and "rss_anon" in out:
        out["rss_file"] = out.pop("rss_total") - out["rss_anon"]
    return out


class Scraper:
    """Scrapes the worker's /metrics beside the RSS samples, one scrape at a time, so a slow
    /metrics never delays a sample: a scrape's figures are merged into the sample taken when it
    started (and printed then); a sample taken while one is still running gets `scrape: busy`."""

    def __init__(self, url: str, timeout: float) -> None:
        self.url, self.timeout = url, timeout
        self.pending: asyncio.Future[dict[str, Any]] | None = None

    def attach(self, sample: dict[str, Any], loop: asyncio.AbstractEventLoop) -> None:
        """Start a scrape for `sample` unless one is running."""
        if self.pending is not None and not self.pending.done():
            sample["scrape"] = "busy"
            print(json.dumps(sample), flush=True)
            return

        def merge(done: asyncio.Future[dict[str, Any]]) -> None:
            sample.update(done.result())
            print(json.dumps(sample), flush=True)

        self.pending = loop.run_in_executor(None, worker_gauges, self.url, self.timeout)
        self.pending.add_done_callback(merge)

    async def drain(self) -> None:
        """Until the last scrape has ended."""
        if self.pending is not None:
            await asyncio.wait([self.pending])


def order_id(run: str, i: int) -> str:
    return f"soak-{run}-{i}"


def send_commands(dep: Deployment, cfg: SoakConfig, run: str, sent: Sent, stop: threading.Event) -> None:
    """`cfg.commands_per_s` commands with distinct ids over the order pool, until `stop`."""
    with CommandClient(dep.settings(), "orders", wait=False) as client:
        started = time.monotonic()
        i = 0
        while not stop.is_set():
            due = int((time.monotonic() - started) * cfg.commands_per_s)
            while i < due and not stop.is_set():
                order = order_id(run, i % cfg.orders)
                command = AddItem("sku", 1, 100) if (i // cfg.orders) % 2 == 0 else RemoveItem("sku")
                client.send(order, command, command_id=f"{run}-{i}")
                i += 1
            sent.commands = i
            time.sleep(0.02)


def send_readings(dep: Deployment, cfg: SoakConfig, sent: Sent) -> subprocess.Popen[str]:
    """The telemetry producer process (`bench.telemetry produce`), its output followed by a thread."""
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.telemetry", "produce", f"{dep.prefix}.", str(cfg.readings_per_s),
         str(cfg.seconds), str(cfg.devices), "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip

    def follow() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            record = json.loads(line)
            if "sent" in record:
                sent.readings = record["sent"]
            elif "done" in record:
                sent.reading_rate = record["rate"]

    threading.Thread(target=follow, daemon=True).start()
    return child


def prepare(dep: Deployment, cfg: SoakConfig, run: str) -> None:
    """The devices' topics and registrations, and the pool of orders (placed, results awaited)."""
    settings = dep.settings()
    runtime = ContextRuntime.connect(settings, devices, retry_for_s=30)
    runtime.ensure_topics(settings)
    ensure_topics(settings, runtime.topics.window_specs(TELEMETRY.name, settings.partitions))
    preload_registrations(settings, runtime, cfg.devices)
    with CommandClient(settings, "orders") as client:
        client.execute("warm-up", PlaceOrder("c"), timeout=120)
        futures = [client.send(order_id(run, i), PlaceOrder(f"c-{i % 97}"))[1] for i in range(cfg.orders)]
        client.flush()
        for future in futures:
            assert future is not None
            future.result(timeout=300)


async def soak(dep: Deployment, cfg: SoakConfig, run: str) -> dict[str, Any]:
    """Run the load and sample the worker."""
    pid, port, url = dep.workers["w1"].pid, dep.ports["w1"], dep.url("w1")
    counter = FrameCounter()
    clients = [
        SseClient(port, counter, f"context=orders&aggregate_id={order_id(run, i)}")
        for i in range(cfg.sse_clients)
    ]
    await open_all(clients)
    sent, stop = Sent(), threading.Event()
    commands = threading.Thread(target=send_commands, args=(dep, cfg, run, sent, stop), daemon=True)
    started = time.monotonic()
    commands.start()
    readings = send_readings(dep, cfg, sent)
    samples: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    diagnostics = dep.data_dir / "diagnostics"
    snapshots = (
        SnapshotTaker(pid, diagnostics, python=cfg.tracemalloc_frames > 0, c_heap=cfg.jemalloc_profile)
        if cfg.tracemalloc_frames or cfg.jemalloc_profile
        else None
    )
    scraper = Scraper(url, cfg.scrape_timeout_s)
    try:
        while (elapsed := time.monotonic() - started) < cfg.seconds:
            if snapshots is not None and elapsed >= cfg.warmup_seconds:
                await loop.run_in_executor(None, snapshots.take_first)
            status = proc_status(pid)
            sample = {
                "t_s": round(elapsed, 1),
                "rss": status["rss"],
                "threads": status["threads"],
                "open_files": open_files(pid),
                "commands_sent": sent.commands,
                "readings_sent": sent.readings,
                "sse_frames": counter.frames,
                **smaps_rollup(pid),
            }
            samples.append(sample)
            scraper.attach(sample, loop)
            next_at = started + len(samples) * cfg.sample_seconds
            await asyncio.sleep(max(0.0, min(next_at, started + cfg.seconds) - time.monotonic()))
        status = proc_status(pid)
        samples.append({"t_s": round(time.monotonic() - started, 1), "rss": status["rss"],
                        "threads": status["threads"], "open_files": open_files(pid),
                        "commands_sent": sent.commands, "readings_sent": sent.readings,
                        "sse_frames": counter.frames})  # fmt: skip
        await scraper.drain()
        growth = await loop.run_in_executor(None, snapshots.growth) if snapshots is not None else None
    finally:
        stop.set()
        commands.join(timeout=60)
        try:
            readings.wait(timeout=120)
        except subprocess.TimeoutExpired:  # behind its rate on a starved machine: the run is over
            readings.kill()
            readings.wait()
        for client in clients:
            client.close()
    elapsed = samples[-1]["t_s"]
    return {
        "samples": samples,
        "commands_per_s": round(sent.commands / elapsed, 1),
        "readings_per_s": round(sent.reading_rate, 1),
        "sse_frames": counter.frames,
        **({"memory_growth": growth} if growth is not None else {}),
    }


def plot(result: dict[str, Any], path: Path) -> str:
    """RSS (and the C heap in use) with the warm-up and the fitted slope, the consumer lag of the
    stages that fell behind, and open files, over time; '' or why not."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install -e '.[bench]')"
    samples, cfg = result["samples"], result["config"]
    t = [s["t_s"] / 60 for s in samples]
    fig, (top, middle, bottom) = plt.subplots(3, 1, sharex=True, figsize=(9, 8))
    top.plot(t, [s["rss"] / 2**20 for s in samples], marker=".", label="RSS")
    heap = [(x, s["malloc_in_use"] / 2**20) for x, s in zip(t, samples, strict=True) if "malloc_in_use" in s]
    if heap:
        top.plot(*zip(*heap, strict=True), marker=".", color="tab:orange", label="C heap in use")
    caches = [
        (x, s["caches_bytes"] / 2**20)
        for x, s in zip(t, samples, strict=True)
        if s.get("caches_bytes", -1) >= 0
    ]
    if caches:
        top.plot(*zip(*caches, strict=True), marker=".", color="tab:purple", label="bounded caches")
    fit = result["fit"]
    if fit is not None:
        t0 = cfg["warmup_seconds"] / 60
        xs = [x for x in t if x >= t0]
        top.plot(xs, [fit["intercept_mib"] + fit["slope_mib_per_min"] * x for x in xs], "--",
                 label=f"fit after warm-up: {fit['slope_mib_per_min']:.2f} MiB/min")  # fmt: skip
    top.axvline(cfg["warmup_seconds"] / 60, color="grey", linestyle=":", label="end of warm-up")
    top.set_ylabel("worker RSS (MiB)")
    top.legend(loc="lower right")
    for group, points in lag_series(samples).items():
        middle.plot(*zip(*points, strict=True), marker=".", label=group)
    middle.set_ylabel("consumer lag (records)")
    if middle.get_legend_handles_labels()[0]:
        middle.legend(loc="upper left", fontsize="small")
    bottom.plot(t, [s["open_files"] for s in samples], marker=".", color="tab:green")
    bottom.set_ylabel("open files")
    bottom.set_xlabel("minutes")
    fig.suptitle(
        f"soak: {cfg['commands_per_s']} commands/s, {cfg['readings_per_s']} readings/s, "
        f"{cfg['sse_clients']} SSE clients, verdict: {result['verdict']}"
    )
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return ""


def lag_series(samples: list[dict[str, Any]], top: int = 4) -> dict[str, list[tuple[float, int]]]:
    """The lag (records) over time (minutes) of the `top` stages with the highest lag seen, named
    without the deployment's prefix."""
    series: dict[str, list[tuple[float, int]]] = {}
    for s in samples:
        for group, lag in s.get("lag", {}).items():
            series.setdefault(group, []).append((s["t_s"] / 60, lag))
    worst = sorted(series, key=lambda g: max(v for _, v in series[g]), reverse=True)[:top]
    return {
        g.split(".", 2)[-1] if g.count(".") >= 2 else g: series[g]
        for g in worst
        if max(v for _, v in series[g]) > 0
    }


def _quantiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(int(len(ordered) * 0.95), len(ordered) - 1)],
        "max": ordered[-1],
    }


def summarize(samples: list[dict[str, Any]], warmup_s: float) -> dict[str, Any]:
    """What a run says besides its slope: how long /health and /metrics took to answer (seconds),
    the scrapes lost (no answer) or skipped (one still running), each stage's lag at the end and
    at its highest, and the C heap in use after the warm-up (MiB)."""
    scraped = [s for s in samples if "scrape_s" in s]
    lags = lag_series(samples, top=100)
    heap = [s["malloc_in_use"] / 2**20 for s in samples if "malloc_in_use" in s and s["t_s"] >= warmup_s]
    return {
        "health_s": _quantiles([s["health_s"] for s in scraped]),
        "scrape_s": _quantiles([s["scrape_s"] for s in scraped]),
        "scrapes_lost": sum(1 for s in scraped if s.get("caches_bytes") == -1),
        "scrapes_skipped": sum(1 for s in samples if s.get("scrape") == "busy"),
        "lag_at_end": {group: points[-1][1] for group, points in lags.items()},
        "lag_max": {group: max(v for _, v in points) for group, points in lags.items()},
        "malloc_in_use_mib_after_warmup": _quantiles([round(h, 1) for h in heap]),
    }


def verdict_of(samples: list[dict[str, Any]], cfg: SoakConfig) -> tuple[dict[str, float] | None, str]:
    """The fit after the warm-up and the verdict (`pass`, `fail`, or `too short`)."""
    fit = rss_fit(samples, cfg.warmup_seconds)
    if fit is None:
        return None, "too short"
    return fit, "pass" if fit["slope_mib_per_min"] < cfg.max_slope_mib_per_min else "fail"


CACHE_SETTINGS = (
    "STREAMS_READ_DOCUMENT_CACHE_BYTES",
    "STREAMS_WRITE_CACHE_BYTES",
    "STREAMS_REALTIME_RING_BYTES",
    "STREAMS_WINDOW_CACHE_BYTES",
)
"""The budgets `SoakConfig.cache_bytes` sets."""
BLOCK_CACHE_SETTING = "STREAMS_ROCKSDB_BLOCK_CACHE_BYTES"
"""RocksDB's block cache, which the soak sets to `SoakConfig.block_cache_bytes`."""


MEMORY_SETTINGS = ("STREAMS_MALLOC_", "STREAMS_CONSUMER_QUEUE_")
"""The worker's memory settings given in the environment, recorded with the result (a pair of
runs compares them)."""


def measure(cfg: SoakConfig) -> dict[str, Any]:
    """One soak run on a worker of its own."""
    raise_fd_limit()
    run = uuid.uuid4().hex[:6]
    worker_env = {
        "STREAMS_CONTEXTS": "orders,devices",
        "STREAMS_SINKS": "0",
        "STREAMS_IDEMPOTENCY_WINDOW_MS": str(cfg.idempotency_window_ms),
        "STREAMS_REALTIME_MAX_PER_ADDRESS": str(cfg.sse_clients + 10),
        **({"PYTHONTRACEMALLOC": str(cfg.tracemalloc_frames)} if cfg.tracemalloc_frames else {}),
        **(jemalloc_env() if cfg.jemalloc_profile else {}),
        **({name: str(cfg.cache_bytes) for name in CACHE_SETTINGS} if cfg.cache_bytes else {}),
        **({BLOCK_CACHE_SETTING: str(cfg.block_cache_bytes)} if cfg.block_cache_bytes else {}),
    }
    with tempfile.TemporaryDirectory() as directory:
        dep = Deployment(prefix=f"soak{run}", data_dir=Path(directory), extra_env=worker_env)
        dep.start("w1")
        try:
            dep.wait_healthy("w1")
            prepare(dep, cfg, run)
            result = asyncio.run(soak(dep, cfg, run))
        finally:
            dep.stop_all()
    fit, verdict = verdict_of(result["samples"], cfg)
    less_caches = rss_fit(result["samples"], cfg.warmup_seconds, less_caches=True)
    memory_settings = {k: v for k, v in os.environ.items() if k.startswith(MEMORY_SETTINGS)}
    return {
        "config": cfg.__dict__,
        "worker_memory_settings": memory_settings,
        **result,
        "fit": fit,
        "fit_less_caches": less_caches,
        "verdict": verdict,
        "summary": summarize(result["samples"], cfg.warmup_seconds),
    }


def main() -> None:
    """Run, write the JSON and the plot under `SOAK_OUT`, exit 1 unless the verdict passes."""
    cfg = SoakConfig()
    started = provenance()
    result = {"provenance_at_start": started, **measure(cfg)}
    result["load_avg_at_end"] = os.getloadavg()[0]
    out = Path(os.environ.get("SOAK_OUT", "bench/results"))
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"soak-{time.strftime('%Y%m%dT%H%M%S')}"
    why_no_plot = plot(result, stem.with_suffix(".png"))
    if why_no_plot:
        result["plot"] = f"not drawn: {why_no_plot}"
    else:
        result["plot"] = str(stem.with_suffix(".png"))
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2))
    fit = result["fit"]
    slope = "n/a" if fit is None else f"{fit['slope_mib_per_min']} MiB/min"
    rest = result.get("fit_less_caches")
    if rest is not None:
        slope += f"; less the bounded caches: {rest['slope_mib_per_min']} MiB/min"
    print(f"soak: {result['verdict']} (RSS slope after warm-up: {slope}); written to {stem}.json")
    sys.exit(0 if result["verdict"] == "pass" or not cfg.fail_on_verdict else 1)


def replot(path: Path) -> None:
    """Draw the plot of a result file again (`python -m bench.soak plot <json>`), and add its
    `summary` when it has none (files written before the summary was)."""
    result = json.loads(path.read_text())
    if "summary" not in result:
        result["summary"] = summarize(result["samples"], result["config"]["warmup_seconds"])
        path.write_text(json.dumps(result, indent=2))
    why_no_plot = plot(result, path.with_suffix(".png"))
    print(why_no_plot or f"drawn: {path.with_suffix('.png')}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "plot":
        replot(Path(sys.argv[2]))
    else:
        main()
