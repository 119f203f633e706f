"""`python -m bench.http`: command latency over HTTP, alone and under 200 concurrent connections.

A worker process of its own deployment; `BENCH_HTTP_COMMANDS` valid PlaceOrder commands are
sent one after the other (alone), then the same number again from `BENCH_HTTP_CONNECTIONS`
concurrent connections (each its own TCP connection, opened at once). Reports p50/p99 of each and
keeps each distribution (bench/latency.py's `cdf_ms`) for the latency plot; the result, with its
provenance, goes to bench/results/http-<time>.json (BENCH_OUT names another directory).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench.latency import cdf_ms
from bench.provenance import provenance, write_result
from tests.integration.workers import Deployment

COMMANDS = int(os.environ.get("BENCH_HTTP_COMMANDS", "1000"))
CONNECTIONS = int(os.environ.get("BENCH_HTTP_CONNECTIONS", "200"))


def quantiles(samples: list[float]) -> dict[str, Any]:
    """p50 and p99 in milliseconds, and the distribution."""
    q = statistics.quantiles(samples, n=100)
    return {"p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000, "n": len(samples), "cdf_ms": cdf_ms(samples)}


async def one(session: aiohttp.ClientSession, url: str, order: str) -> float:
    body = {"aggregate_id": order, "data": {"customer_id": f"customer-{order}", "currency": "EUR"}}
    started = time.perf_counter()
    async with session.post(f"{url}/orders/commands/PlaceOrder", json=body) as response:
        await response.read()
        assert response.status == 200, response.status
    return time.perf_counter() - started


async def alone(url: str, n: int) -> list[float]:
    async with aiohttp.ClientSession() as session:
        return [await one(session, url, f"alone-{uuid.uuid4().hex}") for _ in range(n)]


async def concurrent(url: str, n: int, connections: int) -> list[float]:
    per = n // connections

    async def client() -> list[float]:
        connector = aiohttp.TCPConnector(limit=1, force_close=True)  # a new connection per command
        async with aiohttp.ClientSession(connector=connector) as session:
            return [await one(session, url, f"busy-{uuid.uuid4().hex}") for _ in range(per)]

    results = await asyncio.gather(*(client() for _ in range(connections)))
    return [t for r in results for t in r]


def measure() -> dict[str, Any]:
    """Both figures, from one worker."""
    with tempfile.TemporaryDirectory() as directory:
        dep = Deployment(
            prefix=f"bh{uuid.uuid4().hex[:8]}", data_dir=Path(directory), extra_env={"STREAMS_SINKS": "0"}
        )
        dep.start("w1")
        try:
            dep.wait_healthy("w1")
            url = dep.url("w1")
            asyncio.run(alone(url, 50))  # warm-up: clients, schemas, partitions
            by_one = asyncio.run(alone(url, COMMANDS))
            busy = asyncio.run(concurrent(url, COMMANDS, CONNECTIONS))
        finally:
            dep.stop_all()
    return {
        "commands": COMMANDS,
        "connections": CONNECTIONS,
        "alone": quantiles(by_one),
        "concurrent": quantiles(busy),
    }


if __name__ == "__main__":
    with urllib.request.urlopen("http://127.0.0.1:8081/apis/ccompat/v7/subjects", timeout=5):
        pass  # the stack is up
    started = provenance()
    result = {"provenance_at_start": started, **measure(), "provenance_at_end": provenance()}
    json.dump(result, sys.stdout, indent=2)
    print()
    write_result("http", result, "BENCH_OUT")
