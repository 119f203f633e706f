"""Real-time fan-out on the real stack: catch-up past the in-memory ring while events keep
coming, threads independent of the number of clients, clients that go are released, per-address
limits, and a prompt shutdown with streams open.

The deployment keeps a ring of only 16 records, so a client resuming from a few dozen events
back catches up through Kafka (the shared reader pool), then from the ring, then joins live.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest

from streams.client import CommandClient
from streams.contexts.orders import AddItem, PlaceOrder
from tests.conftest import StackEndpoints
from tests.integration.web.realtime_kit import event_ids, ws_frames
from tests.integration.workers import Deployment, async_wait_until, deployed, wait_until

pytestmark = pytest.mark.integration

PER_ADDRESS = 40


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployed(
        tmp_path_factory.mktemp("worker"),
        "rs",
        STREAMS_SINKS="0",
        STREAMS_READ_SIDE="0",
        STREAMS_REALTIME_RING="16",
        STREAMS_REALTIME_MAX_PER_ADDRESS=str(PER_ADDRESS),
    ) as dep:
        yield dep


def threads(dep: Deployment) -> int:
    status = Path(f"/proc/{dep.workers['w1'].pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def clients_gauge(dep: Deployment) -> float:
    text = httpx.get(f"{dep.url()}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("streams_realtime_clients{")
    )


def test_a_client_resuming_past_the_ring_catches_up_and_joins_live_without_gap_or_repeat(
    deployment: Deployment, client: CommandClient
) -> None:
    agg = f"o-cu-{uuid.uuid4().hex[:6]}"
    url = f"{deployment.url()}/realtime/ws"

    async def scenario() -> list[dict[str, Any]]:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url)
            await ws.send_json({"context": "orders", "aggregate_id": agg})
            (subscribed,) = await ws_frames(ws, 1)
            await ws.close()
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, client.execute, agg, PlaceOrder("c"))
            for i in range(59):  # far more than the ring holds
                client.send(agg, AddItem(f"s{i}", 1, 1))
                client.send(f"{agg}-noise-{i}", PlaceOrder("n"))  # other aggregates, filtered out
            await loop.run_in_executor(None, client.flush)
            writer_done = threading.Event()

            def keep_writing() -> None:  # events keep committing while the client catches up
                for i in range(40):
                    client.execute(agg, AddItem(f"t{i}", 1, 1))
                writer_done.set()

            writer = threading.Thread(target=keep_writing)
            writer.start()
            ws = await http.ws_connect(url)
            await ws.send_json({"context": "orders", "aggregate_id": agg, "resume": subscribed["token"]})
            frames = await ws_frames(ws, 101, timeout=120)
            await loop.run_in_executor(None, writer.join)
            with pytest.raises(asyncio.TimeoutError):
                extra = await ws.receive(timeout=1.5)
                raise AssertionError(f"unexpected frame {extra.data}")
            await ws.close()
            return frames

    frames = asyncio.run(scenario())
    assert frames[0]["type"] == "subscribed"
    events = frames[1:]
    assert [f["aggregate_version"] for f in events] == list(range(1, 101))
    assert [f["event_id"] for f in events] == event_ids(deployment, client, agg)


def test_threads_do_not_grow_with_clients_and_clients_that_go_are_released(
    deployment: Deployment, client: CommandClient
) -> None:
    url = deployment.url()
    agg = f"o-th-{uuid.uuid4().hex[:6]}"

    async def scenario() -> tuple[int, int, float]:
        async with aiohttp.ClientSession() as http:
            one = await http.ws_connect(f"{url}/realtime/ws")
            await one.send_json({"context": "orders"})
            await ws_frames(one, 1)
            wait_until(lambda: clients_gauge(deployment) == 1, "one client counted", 10, 0.2)
            with_one = threads(deployment)
            sockets = []
            for _ in range(15):
                ws = await http.ws_connect(f"{url}/realtime/ws")
                await ws.send_json({"context": "orders", "aggregate_id": agg})
                sockets.append(ws)
            streams = [await http.get(f"{url}/realtime/sse", params={"context": "orders"}) for _ in range(15)]
            for ws in sockets:
                await ws_frames(ws, 1)
            for resp in streams:
                assert resp.status == 200
                assert b"event: subscribed" in await resp.content.readuntil(b"\n\n")
            await asyncio.get_running_loop().run_in_executor(None, client.execute, agg, PlaceOrder("c"))
            for ws in sockets:
                (frame,) = await ws_frames(ws, 1)
                assert frame["aggregate_id"] == agg
            with_31 = threads(deployment)
            assert clients_gauge(deployment) == 31
            closed_at = time.monotonic()
            for ws in sockets:
                await ws.close()
            for resp in streams:
                resp.close()  # the SSE client goes away without a word
            await one.close()
            await async_wait_until(
                lambda: clients_gauge(deployment) == 0, "every stream released", 15, every=0.2
            )
            return with_one, with_31, time.monotonic() - closed_at

    with_one, with_31, released_s = asyncio.run(scenario())
    print(f"\nthreads with 1 client: {with_one}, with 31: {with_31}; all released in {released_s:.1f}s")
    assert with_31 <= with_one + 2  # constant (librdkafka may start a broker thread on its own)
    assert released_s < 5
    assert clients_gauge(deployment) == 0


def test_one_address_may_hold_a_limited_number_of_streams(deployment: Deployment) -> None:
    url = deployment.url()

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            streams = [
                await http.get(f"{url}/realtime/sse", params={"context": "orders"})
                for _ in range(PER_ADDRESS)
            ]
            assert all(r.status == 200 for r in streams)
            refused = await http.get(f"{url}/realtime/sse", params={"context": "orders"})
            assert refused.status == 429
            assert refused.headers["Content-Type"].startswith("application/problem+json")
            body = await refused.json(content_type=None)
            assert (
                body["reason"] == "too_many_streams" and "STREAMS_REALTIME_MAX_PER_ADDRESS" in body["detail"]
            )
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(f"{url}/realtime/ws")
            assert info.value.status == 429
            streams[0].close()

            async def admitted() -> aiohttp.ClientResponse | None:
                again = await http.get(f"{url}/realtime/sse", params={"context": "orders"})
                if again.status == 200:
                    return again
                again.close()
                return None

            again = await async_wait_until(admitted, "the closed stream's place free again", 10, every=0.2)
            again.close()
            for resp in streams[1:]:
                resp.close()

    asyncio.run(scenario())
    wait_until(lambda: clients_gauge(deployment) == 0, "every stream released", 10, 0.2)


def test_sse_errors_are_problem_details(deployment: Deployment) -> None:
    url = f"{deployment.url()}/realtime/sse"
    resp = httpx.get(url, params={"context": "orders", "views": "no-such-view"})
    assert resp.status_code == 400 and resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["code"] == "bad_subscription" and "unknown view" in resp.json()["detail"]
    resp = httpx.get(url, params={"context": "orders", "resume": "x.y"})
    assert resp.status_code == 410 and resp.json()["reason"] == "token_invalid"


def test_the_worker_stops_within_seconds_with_streams_open(deployment: Deployment) -> None:
    """Last in the module: it stops the module's worker."""
    url = deployment.url()
    outcome: dict[str, Any] = {}

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            sockets = []
            for _ in range(20):
                ws = await http.ws_connect(f"{url}/realtime/ws")
                await ws.send_json({"context": "orders"})
                sockets.append(ws)
            streams = [await http.get(f"{url}/realtime/sse", params={"context": "orders"}) for _ in range(20)]
            for ws in sockets:
                await ws_frames(ws, 1)
            started = time.monotonic()
            proc = deployment.workers["w1"]
            proc.send_signal(signal.SIGTERM)
            codes = []
            for ws in sockets:
                msg = await ws.receive(timeout=20)
                codes.append(msg.data if msg.type == aiohttp.WSMsgType.CLOSE else msg.type)
            for resp in streams:
                await asyncio.wait_for(resp.content.read(), 20)  # the stream ends
            outcome["codes"] = codes
            await async_wait_until(lambda: proc.poll() is not None, "the worker to exit", 60, every=0.1)
            outcome["exit_s"] = time.monotonic() - started

    asyncio.run(scenario())
    print(f"\nworker exited {outcome['exit_s']:.1f}s after SIGTERM with 40 streams open")
    assert set(outcome["codes"]) == {1001}
    assert outcome["exit_s"] < 10
