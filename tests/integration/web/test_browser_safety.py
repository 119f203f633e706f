"""A web page cannot drive a worker, and a group member that is not a worker gets no request.

Real worker process; the "browser" is aiohttp/urllib sending what a page could make a browser
send: `text/plain` posts, cross-origin WebSocket and EventSource requests, a rebound host name,
forged resume tokens and forged forwarding signatures. The rogue group member is a real
consumer in the view's consumer group advertising its own URL.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import aiohttp
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from streams.client import CommandClient
from streams.contexts.orders import PlaceOrder
from streams.web.realtime.subscription import encode_token
from streams.wire.topics import partition_for
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment, deployed, free_port, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployed(tmp_path_factory.mktemp("worker"), "bs", STREAMS_SINKS="0") as dep:
        yield dep


def request(dep: Deployment, path: str, *, method: str = "GET", headers: dict[str, str] | None = None,
            body: bytes | None = None) -> tuple[int, dict[str, Any]]:  # fmt: skip
    req = urllib.request.Request(f"{dep.url()}{path}", data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_a_page_cannot_post_commands_as_text_plain(deployment: Deployment) -> None:
    body = json.dumps({"aggregate_id": "o-csrf", "data": {"customer_id": "c"}}).encode()
    status, answer = request(
        deployment,
        "/orders/commands/PlaceOrder",
        method="POST",
        body=body,
        headers={"Content-Type": "text/plain"},
    )
    assert status == 415 and answer["reason"] == "unsupported_media_type"
    status, answer = request(
        deployment,
        "/orders/commands/PlaceOrder",
        method="POST",
        body=body,
        headers={"Content-Type": "application/json", "Origin": "http://evil.example"},
    )
    assert status == 403 and answer["reason"] == "origin_not_allowed"


def test_a_rebound_host_name_is_refused(deployment: Deployment) -> None:
    status, answer = request(deployment, "/health", headers={"Host": "evil.example"})
    assert status == 403 and answer["reason"] == "host_not_allowed"
    assert request(deployment, "/health", headers={"Host": f"localhost:{deployment.ports['w1']}"})[0] == 200


def test_cross_origin_streams_are_refused_before_they_open(deployment: Deployment) -> None:
    async def attempt(origin: str) -> int:
        async with aiohttp.ClientSession() as session:
            try:
                ws = await session.ws_connect(f"{deployment.url()}/realtime/ws", headers={"Origin": origin})
            except aiohttp.WSServerHandshakeError as err:
                return err.status
            await ws.close()
            return 101

    assert asyncio.run(attempt("http://evil.example")) == 403
    assert asyncio.run(attempt(deployment.url())) == 101  # the worker's own page
    status, answer = request(
        deployment, "/realtime/sse?context=orders", headers={"Origin": "http://evil.example"}
    )
    assert status == 403 and answer["reason"] == "origin_not_allowed"


def test_a_forged_resume_token_is_refused(deployment: Deployment) -> None:
    topic = f"{deployment.settings().topic_prefix}orders.events"
    forged = encode_token({topic: dict.fromkeys(range(deployment.partitions), 0)}, b"a guessed secret")
    status, answer = request(deployment, f"/realtime/sse?context=orders&resume={forged}")
    assert status == 410 and answer["code"] == "token_invalid", answer


def test_a_forged_forwarding_signature_is_refused(deployment: Deployment) -> None:
    status, answer = request(deployment, "/orders/views", headers={"X-Streams-Forwarded": "1700000000.AAAA"})
    assert status == 403 and answer["reason"] == "bad_forward"


class _Recorder(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:
        _Recorder.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"stolen": true}')

    def log_message(self, *args: Any) -> None:
        pass


def test_a_group_member_that_is_not_a_signed_worker_is_never_sent_a_request(
    deployment: Deployment, client: CommandClient
) -> None:
    assert client.execute("o-routed", PlaceOrder("c", "EUR")).accepted
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    group = client.runtime.groups.view("order-summary", 1)
    stop = threading.Event()
    rogues = []
    for client_id in (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}#AAAAAAAAAAAAAAAAAAAAAA"):
        rogue = Consumer(
            {
                "bootstrap.servers": deployment.settings().bootstrap,
                "group.id": group,
                "client.id": client_id,
                "partition.assignment.strategy": "range",
                "enable.auto.commit": False,
                "session.timeout.ms": 10000,
                "heartbeat.interval.ms": 1000,
            }
        )
        rogue.subscribe([client.runtime.topics.events])
        rogues.append(rogue)

    def keep_polling(consumer: Consumer) -> None:
        while not stop.is_set():
            consumer.poll(0.2)

    threads = [threading.Thread(target=keep_polling, args=(r,), daemon=True) for r in rogues]
    for thread in threads:
        thread.start()
    try:
        admin = AdminClient({"bootstrap.servers": deployment.settings().bootstrap})

        def rogues_own() -> set[int]:
            description = admin.describe_consumer_groups([group])[group].result(timeout=10)
            return {
                tp.partition
                for member in description.members
                if member.client_id.startswith(f"http://127.0.0.1:{port}") and member.assignment
                for tp in member.assignment.topic_partitions
            }

        taken: set[int] = wait_until(rogues_own, "the rogue members to be given a partition", 90)
        key = next(
            f"o-{i}"
            for i in range(10_000)
            if partition_for(f"o-{i}".encode(), deployment.partitions) in taken
        )
        status, answer = request(deployment, f"/orders/views/order-summary/{key}")
        assert status == 503, (answer, taken, key)
        assert _Recorder.seen == []
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
        for rogue in rogues:
            rogue.close()
        server.shutdown()
