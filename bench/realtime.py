"""`python -m bench.realtime`: many concurrent real-time subscribers on one worker.

A worker process of its own deployment (read side and sinks off: the real-time feed only, with
`STREAMS_REALTIME_MAX_PER_ADDRESS` raised, since every client here comes from 127.0.0.1). This
process is the client: raw asyncio connections for SSE (a request, then the event stream is
scanned for event ids), aiohttp for WebSocket. Traffic stays on 127.0.0.1. In phases:

1. baseline: the worker idle after one subscriber came and went (its context feed started);
2. `BENCH_RT_LATENCY_AT` SSE subscribers (every event, no filter); `BENCH_RT_EVENTS` events, one
   command at a time: for each, the time from its record timestamp (set when it is produced,
   just before its transaction commits) until the last subscriber has it, and per subscriber;
3. up to `BENCH_RT_SSE` SSE subscribers: the worker's threads and RSS, idle, RSS per
   subscriber; the same events measurement;
4. plus `BENCH_RT_WS` WebSocket subscribers: threads, RSS, events measurement;
5. every client disconnects: threads and RSS sampled each second for 30 s.

`BENCH_RT_WORKER_MALLOC=malloc` runs the worker with PYTHONMALLOC=malloc: with CPython's own
allocator (the default) the memory freed by 10,000 disconnects stays in partly used arenas, and
only about a third of it goes back to the system; with glibc's malloc the worker's RSS returns
to its baseline once the hub trims the heap.

Prints a JSON document, also written with its provenance (bench/provenance.py) to
bench/results/realtime-<time>.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp

from bench.provenance import provenance, write_result
from streams.client import CommandClient
from streams.contexts.orders import PlaceOrder
from tests.integration.workers import Deployment

SSE = int(os.environ.get("BENCH_RT_SSE", "10000"))
WS = int(os.environ.get("BENCH_RT_WS", "1000"))
LATENCY_AT = int(os.environ.get("BENCH_RT_LATENCY_AT", "1000"))
EVENTS = int(os.environ.get("BENCH_RT_EVENTS", "30"))
WORKER_MALLOC = os.environ.get("BENCH_RT_WORKER_MALLOC", "")
"""`malloc`: the worker runs with PYTHONMALLOC=malloc (see the memory figures in BENCHMARKS.md)."""
CONNECT_AT_ONCE = 100
EVENT_ID = re.compile(rb'"event_id":"([0-9a-f-]{36})".*?"committed_ms":(\d+)')


def raise_fd_limit() -> int:
    """The soft limit of open files raised to the hard one (inherited by the worker)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def proc_status(pid: int) -> dict[str, int]:
    """Threads and VmRSS (bytes) of a process."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == "Threads":
            out["threads"] = int(value)
        elif name == "VmRSS":
            out["rss"] = int(value.split()[0]) * 1024
    return out


class Receipts:
    """When each client received each event: event id -> receipt times (epoch ms)."""

    def __init__(self) -> None:
        self.times: dict[bytes, list[float]] = defaultdict(list)
        self.committed: dict[bytes, int] = {}

    def saw(self, chunk: bytes, carry: bytes) -> bytes:
        """Scan a chunk of a stream (with what was left of the last one)."""
        data = carry + chunk
        now = time.time() * 1000
        end = 0
        for match in EVENT_ID.finditer(data):
            event_id = match.group(1)
            self.times[event_id].append(now)
            self.committed[event_id] = int(match.group(2))
            end = match.end()
        rest = data[end:]
        return rest[-4096:]


class SseClient:
    """One SSE subscriber on a raw connection."""

    def __init__(self, port: int, receipts: Receipts, query: str = "context=orders") -> None:
        self.port = port
        self.receipts = receipts
        self.query = query
        """The subscription's query string (e.g. with an `aggregate_id` filter)."""
        self.writer: asyncio.StreamWriter | None = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer = writer
        writer.write(
            f"GET /realtime/sse?{self.query} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert b" 200 " in head.split(b"\r\n")[0], head[:200]
        first = await reader.readuntil(b"\n\n")
        while b"subscribed" not in first:  # chunked encoding: the size line comes first
            first += await reader.readuntil(b"\n\n")
        self.task = asyncio.ensure_future(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        carry = b""
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            carry = self.receipts.saw(chunk, carry)

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.writer is not None:
            self.writer.close()


class WsClient:
    """One WebSocket subscriber (aiohttp)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, receipts: Receipts) -> None:
        self.session = session
        self.url = url
        self.receipts = receipts
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self.ws = await self.session.ws_connect(f"{self.url}/realtime/ws", heartbeat=None)
        await self.ws.send_json({"type": "subscribe", "context": "orders"})
        msg = await self.ws.receive(timeout=60)
        assert "subscribed" in msg.data, msg
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.receipts.saw(msg.data.encode(), b"")

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.ws is not None:
            await self.ws.close()


async def open_all(clients: list[Any]) -> float:
    """Open clients, CONNECT_AT_ONCE at a time (the server's listen backlog is 128); seconds."""
    started = time.perf_counter()
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def one(client: Any) -> None:
        async with gate:
            for attempt in range(5):
                try:
                    await asyncio.wait_for(client.open(), 60)
                    return
                except (TimeoutError, OSError):
                    if attempt == 4:
                        raise
                    await asyncio.sleep(1)

    await asyncio.gather(*(one(c) for c in clients))
    return time.perf_counter() - started


async def deliver(client: CommandClient, receipts: Receipts, subscribers: int, events: int) -> dict[str, Any]:
    """Send `events` events one at a time; per event, the time until every subscriber had it."""
    loop = asyncio.get_running_loop()
    receipts.times.clear()
    sent = []
    for i in range(events):
        result = await loop.run_in_executor(
            None, client.execute, f"rt-{uuid.uuid4().hex[:10]}", PlaceOrder(f"c{i}")
        )
        assert result.accepted
        sent.append(result)
        await asyncio.sleep(0.3)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        complete = [e for e, t in receipts.times.items() if len(t) >= subscribers]
        if len(complete) >= events:
            break
        await asyncio.sleep(0.2)
    to_all, each = [], []
    for event_id, times in receipts.times.items():
        committed = receipts.committed[event_id]
        each += [t - committed for t in times]
        if len(times) >= subscribers:
            to_all.append(max(times) - committed)
    nan = [float("nan")] * 99
    q_all = statistics.quantiles(to_all, n=100, method="inclusive") if len(to_all) > 1 else nan
    q_each = statistics.quantiles(each, n=100, method="inclusive") if len(each) > 1 else nan
    return {
        "subscribers": subscribers,
        "events": events,
        "events_delivered_to_all": len(to_all),
        "to_all_p50_ms": round(q_all[49], 1),
        "to_all_p99_ms": round(q_all[98], 1),
        "to_all_max_ms": round(max(to_all), 1) if to_all else None,
        "per_subscriber_p50_ms": round(q_each[49], 1),
        "per_subscriber_p99_ms": round(q_each[98], 1),
    }


async def scenario(dep: Deployment, client: CommandClient) -> dict[str, Any]:
    pid = dep.workers["w1"].pid
    port = dep.ports["w1"]
    url = dep.url("w1")
    receipts = Receipts()
    out: dict[str, Any] = {"pristine": proc_status(pid)}
    warm = SseClient(port, receipts)
    await warm.open()
    warm.close()
    await asyncio.sleep(3)
    out["baseline"] = baseline = proc_status(pid)
    sse = [SseClient(port, receipts) for _ in range(SSE)]
    out["open_latency_group_s"] = await open_all(sse[:LATENCY_AT])
    await asyncio.sleep(2)
    out[f"sse_{LATENCY_AT}"] = {**proc_status(pid), **await deliver(client, receipts, LATENCY_AT, EVENTS)}
    out["open_rest_s"] = await open_all(sse[LATENCY_AT:])
    await asyncio.sleep(5)
    idle = proc_status(pid)
    out[f"sse_{SSE}_idle"] = {
        **idle,
        "rss_per_subscriber_bytes": round((idle["rss"] - baseline["rss"]) / SSE),
    }
    out[f"sse_{SSE}"] = {**await deliver(client, receipts, SSE, EVENTS), **proc_status(pid)}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        ws = [WsClient(session, url, receipts) for _ in range(WS)]
        out["open_ws_s"] = await open_all(ws)
        await asyncio.sleep(3)
        idle = proc_status(pid)
        out[f"sse_{SSE}_ws_{WS}_idle"] = idle
        out[f"sse_{SSE}_ws_{WS}"] = {**await deliver(client, receipts, SSE + WS, EVENTS), **proc_status(pid)}
        closed_at = time.monotonic()
        for c in sse:
            c.close()
        await asyncio.gather(*(c.close() for c in ws))
    peak = max(v.get("rss", 0) for v in out.values() if isinstance(v, dict))
    samples = []
    threads_back = rss_back = None
    while time.monotonic() - closed_at < 30:
        await asyncio.sleep(1)
        now = proc_status(pid)
        t = round(time.monotonic() - closed_at, 1)
        samples.append({"t_s": t, **now})
        if threads_back is None and now["threads"] <= baseline["threads"]:
            threads_back = t
        # back: what the subscribers added is 90 % gone
        if rss_back is None and now["rss"] - baseline["rss"] <= 0.1 * (peak - baseline["rss"]):
            rss_back = t
    out["after_disconnect"] = {
        "samples": samples,
        "peak_rss": peak,
        "threads_back_to_baseline_s": threads_back,
        "rss_back_to_baseline_s": rss_back,
    }
    metrics = await asyncio.get_running_loop().run_in_executor(None, _metric, url)
    out["clients_gauge_after"] = metrics
    return out


def _metric(url: str) -> float:
    import urllib.request

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("streams_realtime_clients{")
    )


def measure() -> dict[str, Any]:
    """Every phase, from one worker."""
    limit = raise_fd_limit()
    needed = SSE + WS + 200
    if limit < needed:
        raise SystemExit(f"the open-file limit is {limit}; {needed} are needed (BENCH_RT_SSE + BENCH_RT_WS)")
    worker_env = {
        "STREAMS_SINKS": "0",
        "STREAMS_READ_SIDE": "0",
        "STREAMS_REALTIME_MAX_PER_ADDRESS": str(SSE + WS + 10),
        "STREAMS_REALTIME_MAX_CLIENTS": str(SSE + WS + 10),
    }
    if WORKER_MALLOC:
        worker_env["PYTHONMALLOC"] = WORKER_MALLOC
    with tempfile.TemporaryDirectory() as directory:
        dep = Deployment(
            prefix=f"brt{uuid.uuid4().hex[:8]}",
            data_dir=Path(directory),
            extra_env=worker_env,
        )
        dep.start("w1")
        try:
            dep.wait_healthy("w1")
            with CommandClient(dep.settings(), "orders") as client:
                client.execute("warm-up", PlaceOrder("c"), timeout=120)
                result = asyncio.run(scenario(dep, client))
        finally:
            dep.stop_all()
    result["config"] = {
        "sse": SSE, "ws": WS, "latency_at": LATENCY_AT, "events": EVENTS, "fd_limit": limit,
        "worker_pythonmalloc": WORKER_MALLOC or "default (pymalloc)",
    }  # fmt: skip
    return result


def main() -> None:
    """Run, print, and write the JSON with its provenance to bench/results/realtime-<time>.json
    (BENCH_OUT names another directory)."""
    started = provenance()
    result = {"provenance_at_start": started, **measure(), "provenance_at_end": provenance()}
    print(json.dumps(result, indent=2))
    write_result("realtime", result, "BENCH_OUT")


if __name__ == "__main__":
    main()
