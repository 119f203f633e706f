"""Real-time publishing on the real stack: WebSocket and SSE against a worker process.

The deployment runs with STREAMS_AUTH_TOKEN set, so every request below carries the token and
the auth test checks the refusals.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from streams.client import CommandClient
from streams.contexts.orders import AddItem, PlaceOrder
from streams.web.realtime.subscription import encode_token
from tests.conftest import StackEndpoints
from tests.integration.web.realtime_kit import event_ids, no_more, sse_read, ws_frames
from tests.integration.workers import Deployment, deployed, wait_until

pytestmark = pytest.mark.integration

SECRET = "test-secret"
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PER_ADDRESS = 120


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployed(
        tmp_path_factory.mktemp("worker"),
        "r",
        STREAMS_AUTH_TOKEN=TOKEN,
        STREAMS_SECRET=SECRET,
        STREAMS_SINKS="0",
        STREAMS_READ_SIDE="0",
        STREAMS_REALTIME_BUFFER="50",
        STREAMS_REALTIME_MAX_PER_ADDRESS=str(PER_ADDRESS),
    ) as dep:
        yield dep


def base_url(dep: Deployment) -> str:
    return f"http://127.0.0.1:{dep.ports['w1']}"


def test_websocket_streams_committed_events_and_resumes_without_gaps_or_repeats(
    deployment: Deployment, client: CommandClient
) -> None:
    agg = f"o-ws-{uuid.uuid4().hex[:6]}"

    async def scenario() -> None:
        async with aiohttp.ClientSession(headers=AUTH) as http:
            ws = await http.ws_connect(f"{base_url(deployment)}/realtime/ws")
            await ws.send_json({"type": "subscribe", "context": "orders", "aggregate_id": agg})
            (subscribed,) = await ws_frames(ws, 1)
            assert subscribed["type"] == "subscribed" and subscribed["token"]
            assert client.execute(agg, PlaceOrder("c-ws")).accepted
            client.execute("o-other", PlaceOrder("c"))  # filtered out: another aggregate
            for i in range(4):
                assert client.execute(agg, AddItem(f"sku-{i}", 1, 100)).accepted
            first = await ws_frames(ws, 3)
            await ws.close()  # mid-stream: 2 events of this batch not read yet
            for i in range(4, 8):
                assert client.execute(agg, AddItem(f"sku-{i}", 1, 100)).accepted
            ws2 = await http.ws_connect(f"{base_url(deployment)}/realtime/ws")
            await ws2.send_json(
                {"type": "subscribe", "context": "orders", "aggregate_id": agg, "resume": first[-1]["token"]}
            )
            assert (await ws_frames(ws2, 1))[0]["type"] == "subscribed"
            rest = await ws_frames(ws2, 6)
            await no_more(ws2)
            await ws2.close()
        received = first + rest
        assert all(f["type"] == "event" and f["aggregate_id"] == agg for f in received)
        assert [f["event_id"] for f in received] == event_ids(deployment, client, agg)
        assert [f["aggregate_version"] for f in received] == list(range(1, 10))
        assert received[0]["event_type"] == "OrderPlaced" and received[0]["data"]["customer_id"] == "c-ws"

    asyncio.run(scenario())


def test_websocket_bad_input_keeps_the_socket_usable_and_bad_tokens_are_refused(
    deployment: Deployment, client: CommandClient
) -> None:
    settings = deployment.settings()
    events = client.runtime.topics.events
    # expire the first record of partition 0 so that a token pointing there is expired
    placed = client.execute("o-expire-0", PlaceOrder("c"))
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    cut = TopicPartition(events, placed.event_partition, placed.event_offsets[0] + 1)
    for future in admin.delete_records([cut]).values():
        future.result(timeout=30)
    expired = encode_token({events: {p: 0 for p in range(settings.partitions)}}, SECRET.encode())

    async def scenario() -> None:
        async with aiohttp.ClientSession(headers=AUTH) as http:
            ws = await http.ws_connect(f"{base_url(deployment)}/realtime/ws")
            bad: list[Any] = [
                "this is not json",
                {"type": "subscribe", "context": "nope"},
                {"context": "orders", "aggregate_id": 7},
                {"context": "orders", "colour": "red"},
                {"context": "orders", "resume": "garbage!!"},
                {"context": "orders", "resume": expired},
            ]
            frames = []
            for message in bad:  # one at a time: a new subscription replaces a pending one
                await (ws.send_str(message) if isinstance(message, str) else ws.send_json(message))
                frames += await ws_frames(ws, 1)
            assert [f["type"] for f in frames] == ["error"] * 6
            assert "Expecting value" in frames[0]["error"]
            assert "unknown context 'nope'" in frames[1]["error"]
            assert "aggregate_id must be a string" in frames[2]["error"]
            assert "unknown field(s) colour" in frames[3]["error"]
            assert frames[4]["code"] == "token_invalid"
            assert frames[5]["code"] == "token_expired" and "expired" in frames[5]["error"]
            # still usable
            await ws.send_json({"context": "orders", "event_type": "OrderPlaced"})
            assert (await ws_frames(ws, 1))[0]["type"] == "subscribed"
            client.execute("o-after-errors", PlaceOrder("c"))
            (frame,) = await ws_frames(ws, 1)
            assert frame["aggregate_id"] == "o-after-errors" and frame["event_type"] == "OrderPlaced"
            await ws.close()

    asyncio.run(scenario())
    resp = httpx.get(
        f"{base_url(deployment)}/realtime/sse",
        params={"context": "orders"},
        headers={**AUTH, "Last-Event-ID": expired},
    )
    assert resp.status_code == 410 and resp.json()["code"] == "token_expired"


def test_sse_streams_events_and_resumes_with_last_event_id(
    deployment: Deployment, client: CommandClient
) -> None:
    agg = f"o-sse-{uuid.uuid4().hex[:6]}"
    url = f"{base_url(deployment)}/realtime/sse"
    params = {"context": "orders", "aggregate_id": agg}
    with httpx.Client(headers=AUTH, timeout=20) as http:
        with http.stream("GET", url, params=params) as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            lines = resp.iter_lines()
            assert sse_read(lines, 1)[0]["type"] == "subscribed"
            assert client.execute(agg, PlaceOrder("c-sse")).accepted
            for i in range(3):
                assert client.execute(agg, AddItem(f"s{i}", 1, 5)).accepted
            first = sse_read(lines, 2)  # disconnect mid-stream: 2 committed events not read
        for i in range(3, 5):
            assert client.execute(agg, AddItem(f"s{i}", 1, 5)).accepted
        with http.stream("GET", url, params=params, headers={"Last-Event-ID": first[-1]["_id"]}) as resp:
            frames = sse_read(resp.iter_lines(), 5)  # subscribed + the 4 missed
    assert frames[0]["type"] == "subscribed"
    received = first + frames[1:]
    assert [f["event_id"] for f in received] == event_ids(deployment, client, agg)
    assert [f["aggregate_version"] for f in received] == list(range(1, 7))
    assert all(f["_id"] == f["token"] for f in received)


def test_auth_token_is_required_for_http_websocket_and_sse(deployment: Deployment) -> None:
    url = base_url(deployment)
    body = {"aggregate_id": "o-auth", "data": {"customer_id": "c"}}
    assert httpx.post(f"{url}/orders/commands/PlaceOrder", json=body).status_code == 401
    assert (
        httpx.post(
            f"{url}/orders/commands/PlaceOrder", json=body, headers={"Authorization": "Bearer no"}
        ).status_code
        == 401
    )
    assert httpx.post(f"{url}/orders/commands/PlaceOrder", json=body, headers=AUTH).status_code == 200
    assert httpx.get(f"{url}/realtime/sse", params={"context": "orders"}).status_code == 401
    assert httpx.get(f"{url}/live").status_code == 401
    assert httpx.get(f"{url}/live", params={"access_token": TOKEN}).status_code == 200
    assert httpx.get(f"{url}/health").status_code == 200

    async def refused() -> None:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(f"{url}/realtime/ws")
            assert info.value.status == 401
            ws = await http.ws_connect(f"{url}/realtime/ws?access_token={TOKEN}")
            await ws.close()

    asyncio.run(refused())


def test_push_latency_with_100_clients(deployment: Deployment, client: CommandClient) -> None:
    """Figure for the closing note: record timestamp (just before the commit) -> client receipt."""
    clients, commands = 100, 40
    agg = f"o-lat-{uuid.uuid4().hex[:6]}"
    latencies: list[float] = []

    async def scenario() -> None:
        async with aiohttp.ClientSession(headers=AUTH) as http:
            sockets = [await http.ws_connect(f"{base_url(deployment)}/realtime/ws") for _ in range(clients)]
            for ws in sockets:
                await ws.send_json({"context": "orders", "aggregate_id": agg})
            for ws in sockets:
                assert (await ws_frames(ws, 1))[0]["type"] == "subscribed"

            async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
                for _ in range(commands):
                    msg = await ws.receive(timeout=60)
                    frame = json.loads(msg.data)
                    latencies.append(time.time() * 1000 - frame["committed_ms"])

            readers = [asyncio.create_task(drain(ws)) for ws in sockets]
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, client.execute, agg, PlaceOrder("c"))
            for i in range(commands - 1):
                await loop.run_in_executor(None, client.execute, agg, AddItem(f"l{i}", 1, 1))
                await asyncio.sleep(0.05)  # the commands' pace, not a wait
            await asyncio.gather(*readers)
            for ws in sockets:
                await ws.close()

    asyncio.run(scenario())
    assert len(latencies) == clients * commands
    q = statistics.quantiles(latencies, n=100)
    print(f"\npush latency, {clients} clients x {commands} events: p50={q[49]:.1f} ms p99={q[98]:.1f} ms")
    metrics_text = httpx.get(f"{base_url(deployment)}/metrics", headers=AUTH).text
    assert "streams_realtime_messages_pushed_total" in metrics_text


def dropped(dep: Deployment) -> float:
    text = httpx.get(f"{base_url(dep)}/metrics", headers=AUTH).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("streams_realtime_clients_dropped_total{") and 'transport="websocket"' in line
    )


class RawWebSocket:
    """A WebSocket client on a plain socket with a tiny receive buffer, so it can refuse to read."""

    def __init__(self, port: int, subscription: dict[str, Any]) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(30)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        request = [
            "GET /realtime/ws HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket", "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13", f"Authorization: Bearer {TOKEN}",
        ]  # fmt: skip
        self.sock.sendall(("\r\n".join(request) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            assert self._fill(len(self.buf) + 1), self.buf
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        assert b" 101 " in head.split(b"\r\n")[0], head
        data = json.dumps(subscription).encode()
        assert len(data) < 126
        mask = os.urandom(4)
        self.sock.sendall(
            bytes([0x81, 0x80 | len(data)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        )

    def _fill(self, n: int) -> bool:
        """Read until `n` bytes are buffered (False: the connection ended first)."""
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                return False
            if not chunk:
                return False
            self.buf += chunk
        return True

    def frame(self) -> tuple[int, bytes] | None:
        """The next server frame (opcode, payload), or None at the end of the connection."""
        if not self._fill(2):
            return None
        opcode, length, offset = self.buf[0] & 0x0F, self.buf[1] & 0x7F, 2
        if length in (126, 127):
            offset = 4 if length == 126 else 10
            if not self._fill(offset):
                return None
            length = int.from_bytes(self.buf[2:offset], "big")
        if not self._fill(offset + length):
            return None
        payload, self.buf = self.buf[offset : offset + length], self.buf[offset + length :]
        return opcode, payload

    def close_code(self) -> int | None:
        """Read server frames until a close frame (its code) or the end of the connection (None)."""
        while (frame := self.frame()) is not None:
            opcode, payload = frame
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
        return None


def test_a_client_that_does_not_read_is_disconnected_with_4008(
    deployment: Deployment, client: CommandClient
) -> None:
    agg = f"o-slow-{uuid.uuid4().hex[:6]}"
    before = dropped(deployment)
    ws = RawWebSocket(deployment.ports["w1"], {"context": "orders", "event_type": "OrderPlaced"})
    try:
        subscribed = ws.frame()  # the subscription is open ("from now") once it says so
        assert subscribed is not None and json.loads(subscribed[1])["type"] == "subscribed", subscribed
        # ~1 kB frames (customer ids at their 255-character limit), 3,000 of them: the socket
        # buffers fill, then the 50-frame queue, then the grace runs out
        big = "x" * 250
        for i in range(3000):
            client.send(f"{agg}-{i}", PlaceOrder(f"{big}{i}"))
        client.flush()
        # the client never reads meanwhile; it reads as soon as the worker has dropped it, within
        # the worker's grace for the close frame
        wait_until(lambda: dropped(deployment) > before, "the slow client dropped", timeout=90, every=0.2)
        code = ws.close_code()  # what was buffered, then the close frame
        assert code == 4008
        assert dropped(deployment) == before + 1
        assert httpx.get(f"{base_url(deployment)}/health").status_code == 200  # the worker is unaffected
    finally:
        ws.sock.close()
