"""The guard on a real worker: what a Kafka reader, a crafted header or a crafted link can do.

One worker with a bearer token and an explicit secret; one more that is started with a token and
no secret (it must not start: the secret it would keep in Kafka can be read by any Kafka client).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.web.auth import FORWARDED
from streams.wire.signing import signature
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment, deployed

pytestmark = pytest.mark.integration
TOKEN = "guard-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
PER_CLIENT = 2


ENV = {
    "STREAMS_AUTH_TOKEN": TOKEN,
    "STREAMS_SECRET": "guard-secret",
    "STREAMS_SINKS": "0",
    "STREAMS_WINDOWS": "0",
    "STREAMS_TRUSTED_PROXIES": "127.0.0.1",  # the tests' requests come through a "proxy" at 127.0.0.1
    "STREAMS_REALTIME_MAX_PER_ADDRESS": str(PER_CLIENT),
}


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployed(tmp_path_factory.mktemp("guard"), "g", **ENV) as dep:
        yield dep


def _read_secret(stack: StackEndpoints, topic: str, timeout: float = 30.0) -> bytes | None:
    consumer = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": f"g-{uuid.uuid4().hex}"})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                return bytes(msg.value() or b"")
        return None
    finally:
        consumer.close()


def test_a_secret_read_from_kafka_cannot_stand_in_for_the_token(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    """Reproduced: with a token but no STREAMS_SECRET, the secret read from its topic signed a
    POST of a command without the token, and the worker accepted it (200). Now such a worker does
    not start; had it started, the same forward would be refused."""
    dep = Deployment(
        prefix=f"gs{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        extra_env={"STREAMS_AUTH_TOKEN": TOKEN, "STREAMS_SINKS": "0", "STREAMS_WINDOWS": "0"},
    )
    proc = dep.start("w1")
    try:
        try:
            dep.wait_healthy("w1", timeout=120)
        except RuntimeError:  # it exited: the refusal names the setting
            assert proc.returncode != 0 and "STREAMS_SECRET" in dep.log_tail("w1")
            return
        secret = _read_secret(stack, f"{dep.prefix}.__{dep.prefix}.secret")
        assert secret is not None
        path = "/orders/commands/PlaceOrder"
        stamp = str(int(time.time()))
        forged = f"{stamp}.{signature(secret, 'forward', 'POST', path, '', stamp)}"
        body = {"aggregate_id": "o-forged", "data": {"customer_id": "c", "currency": "EUR"}}
        response = httpx.post(f"{dep.url()}{path}", json=body, headers={FORWARDED: forged}, timeout=30)
        assert response.status_code in (401, 403), response.text
    finally:
        dep.stop_all()


def _get(dep: Deployment, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(f"{dep.url()}{path}", headers={**BEARER, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as response:
            is_json = response.headers.get_content_type().endswith("json")
            return response.status, json.loads(response.read() or b"{}") if is_json else {}
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw or b"{}")
        except ValueError:
            return err.code, {"raw": raw.decode(errors="replace")}


def test_a_signed_post_forward_is_refused(deployment: Deployment) -> None:
    path = "/orders/commands/PlaceOrder"
    stamp = str(int(time.time()))
    forged = f"{stamp}.{signature(b'guard-secret', 'forward', 'POST', path, '', stamp)}"
    body = {"aggregate_id": "o-forged", "data": {"customer_id": "c", "currency": "EUR"}}
    response = httpx.post(f"{deployment.url()}{path}", json=body, headers={FORWARDED: forged}, timeout=30)
    assert response.status_code == 403 and response.json()["reason"] == "bad_forward"


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/realtime/sse?context=orders", {"Origin": "http://["}),
        ("/orders/views/order-summary/o-1", {FORWARDED: "9" * 5000 + ".x"}),
    ],
)
def test_malformed_headers_answer_400_not_500(
    deployment: Deployment, path: str, headers: dict[str, str]
) -> None:
    """Reproduced: both answered 500 with a traceback."""
    status, body = _get(deployment, path, headers)
    assert status == 400 and body["reason"] == "invalid_header", body


def test_a_post_with_a_malformed_origin_answers_400(deployment: Deployment) -> None:
    """Reproduced: 500."""
    response = httpx.post(
        f"{deployment.url()}/orders/commands/PlaceOrder",
        json={"aggregate_id": "o-1"},
        headers={**BEARER, "Origin": "http://["},
        timeout=30,
    )
    assert response.status_code == 400 and response.json()["reason"] == "invalid_header"


@pytest.mark.parametrize("view", ["commands", "dlq", "aggregates-changelog", "command-results"])
def test_a_subscription_names_declared_views_only(deployment: Deployment, view: str) -> None:
    """Reproduced: internal topics could be followed as views."""
    status, body = _get(deployment, f"/realtime/sse?context=orders&events=false&views={view}")
    assert status == 400 and body["reason"] == "bad_subscription", body
    assert "unknown view" in body["detail"]


@pytest.mark.parametrize(
    "query", ["context=/evil.example", "context=//evil.example", "context=orders&view=/x", "transport=js"]
)
def test_the_live_page_takes_declared_names_only(deployment: Deployment, query: str) -> None:
    """Reproduced: `/live?context=/evil.example` served the page, which then posted commands
    (with the bearer token) to another origin."""
    status, body = _get(deployment, f"/live?{query}")
    assert status == 400 and body["reason"] == "invalid_parameter", body
    assert _get(deployment, "/live?context=orders&view=order-summary")[0] == 200


@pytest.mark.parametrize(
    "path", ["/router/", "/table/", "/table/orders/", "/graph/", "/stats/", "/router/orders/"]
)
def test_faust_views_are_not_mounted(deployment: Deployment, path: str) -> None:
    """Reproduced: Faust's /router and /table answered."""
    assert _get(deployment, path)[0] == 404


def test_a_409_names_only_the_positions_asked_for(deployment: Deployment) -> None:
    """Issue 30: the message read `(or offset None)`."""
    status, body = _get(deployment, "/orders/views/order-summary/o-none?min_version=5&timeout=0.2")
    assert status == 409 and body["reason"] == "not_reached", body
    assert "None" not in body["detail"] and "version 5" in body["detail"]


def test_behind_a_trusted_proxy_one_client_cannot_lock_the_others_out(deployment: Deployment) -> None:
    """Reproduced: the stream limit was keyed on the TCP peer, so behind a proxy the streams of
    one user (here 2) refused every other user's."""
    url = f"{deployment.url()}/realtime/sse"
    params = {"context": "orders", "access_token": TOKEN}

    def via_proxy(client: str) -> dict[str, str]:
        return {"X-Forwarded-For": f"{client}, 127.0.0.1"}

    with ExitStack() as held, httpx.Client(timeout=30) as http:
        for _ in range(PER_CLIENT):
            response = held.enter_context(
                http.stream("GET", url, params=params, headers=via_proxy("198.51.100.1"))
            )
            assert response.status_code == 200
        with http.stream("GET", url, params=params, headers=via_proxy("198.51.100.1")) as refused:
            assert refused.status_code == 429
        with http.stream("GET", url, params=params, headers=via_proxy("198.51.100.2")) as other:
            assert other.status_code == 200
