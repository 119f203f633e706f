"""Property-based fuzzing of a live worker from its own OpenAPI document (schemathesis), of
the command envelope and of the headers the server parses (Hypothesis): no 5xx, no hang, the
worker healthy afterwards, and no event appended for a request the API refused.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from streams.client import read_topic
from streams.config import Settings
from streams.contexts.registry import get_context
from streams.web.openapi import openapi_document
from streams.wire import headers as h
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment, deployed

pytestmark = pytest.mark.integration

# the streaming endpoints never end by themselves: test_realtime.py and test_browser_safety.py cover them
SCHEMA = schemathesis.openapi.from_dict(
    openapi_document(Settings(), {"orders": get_context("orders")})
).exclude(path_regex="^/realtime/")
EXAMPLES = 25
"""Examples per operation (the default 100 would take ~15 minutes on this machine)."""
ANSWERED: dict[str, set[str]] = {"accepted": set(), "queued": set()}
"""Command ids the API accepted, or queued without an answer yet (202)."""


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployed(
        tmp_path_factory.mktemp("worker"),
        "fz",
        STREAMS_SINKS="0",
        STREAMS_TRUSTED_PROXIES="127.0.0.1",  # X-Forwarded-For is parsed
        STREAMS_RATE_LIMIT="100000",  # the limiter runs on every request, without limiting
    ) as dep:
        yield dep


def _note_command(case: Any, response: Any) -> None:
    if case.method != "POST" or response.status_code not in (200, 202):
        return
    body = response.json()
    ANSWERED["accepted" if response.status_code == 200 else "queued"].add(body["command_id"])


@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_the_document_allows_or_forbids_gets_a_5xx(case: Any, deployment: Deployment) -> None:
    if isinstance(case.query, dict) and "timeout" in case.query:
        case.query["timeout"] = 0.5  # a request may wait for a view up to a minute: not here
    started = time.monotonic()
    response = case.call(base_url=deployment.url(), timeout=30)
    assert time.monotonic() - started < 30, "the worker hung"
    case.validate_response(response, checks=[not_a_server_error])
    _note_command(case, response)


ENVELOPE_FIELDS = [
    "aggregate_id",
    "data",
    "expected_version",
    "command_id",
    "correlation_id",
    "actor",
    "other",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
envelopes = st.dictionaries(st.sampled_from(ENVELOPE_FIELDS), json_values, max_size=6) | json_values


@given(body=envelopes, command=st.sampled_from(["PlaceOrder", "AddItem", "ShipOrder", "Nope"]))
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_command_envelope_gets_a_5xx(deployment: Deployment, body: Any, command: str) -> None:
    response = httpx.post(
        f"{deployment.url()}/orders/commands/{command}",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        params={"timeout": "2"},
        timeout=30,
    )
    assert response.status_code < 500, response.text
    if response.status_code in (200, 202):
        ANSWERED["accepted" if response.status_code == 200 else "queued"].add(response.json()["command_id"])
    else:
        assert response.headers["content-type"].startswith("application/problem+json"), response.headers
        assert response.json()["reason"], response.text


PARSED_HEADERS = [
    "Origin",
    "X-Streams-Forwarded",
    "X-Forwarded-For",
    "Authorization",
    "Host",
    "Last-Event-ID",
    "Content-Type",
    "Content-Length",
]
header_values = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40),
    st.sampled_from(["http://[", "http://h:99999", "null", "9" * 5000 + ".x", "1.2.3.4, ::1, x", "-1"]),
    st.integers(min_value=0, max_value=10**30).map(lambda n: f"{n}.{n}"),
)
HEADER_TARGETS = [
    ("POST", "/orders/commands/PlaceOrder"),
    ("GET", "/orders/views/order-summary/o-1?timeout=0.2"),
    ("GET", "/orders/views/order-summary?limit=2"),
    ("GET", "/realtime/sse?context=orders"),
    ("GET", "/health"),
]


@given(
    headers=st.dictionaries(st.sampled_from(PARSED_HEADERS), header_values, min_size=1, max_size=4),
    target=st.sampled_from(HEADER_TARGETS),
)
@example(headers={"Origin": "http://["}, target=HEADER_TARGETS[0])
@example(headers={"Origin": "http://["}, target=HEADER_TARGETS[3])
@example(headers={"X-Streams-Forwarded": "9" * 5000 + ".x"}, target=HEADER_TARGETS[1])
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_header_gets_a_5xx(
    deployment: Deployment, headers: dict[str, str], target: tuple[str, str]
) -> None:
    """Reproduced: `Origin: http://[` and a 5,000-digit forwarded stamp answered 500."""
    method, path = target
    body = json.dumps({"aggregate_id": "o-fz", "data": {"customer_id": "c"}}).encode()
    status, content_type, answer = _raw_request(deployment, method, path, headers, body)
    if status is None:
        return  # the connection was closed without an answer: nothing leaked, nothing ran
    assert status < 500, (status, headers, answer[:500])
    if content_type == "text/plain" and status == 400:
        return  # aiohttp's HTTP parser refused the request before any handler (e.g. Content-Length)
    if status >= 400 and status not in (404, 409, 422):  # 409/422: a command's rejected result
        assert content_type == "application/problem+json", (status, headers, answer[:300])
        assert json.loads(answer)["reason"]
    if status in (200, 202) and method == "POST":
        ANSWERED["accepted" if status == 200 else "queued"].add(json.loads(answer)["command_id"])


def _raw_request(
    dep: Deployment, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int | None, str, bytes]:
    """One request written byte for byte (an HTTP client library would refuse malformed headers):
    (status or None, content type, body of a non-streaming answer)."""
    fields = {"Host": f"127.0.0.1:{dep.ports['w1']}", "Connection": "close"}
    if method == "POST":
        fields |= {"Content-Type": "application/json", "Content-Length": str(len(body))}
    fields |= headers
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", dep.ports["w1"]), timeout=30) as sock:
        sock.sendall(head.encode("latin-1") + (body if method == "POST" else b""))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return (None, "", b"") if not data else _parsed(data)
            data += chunk
        status, content_type, answer = _parsed(data)
        if content_type == "text/event-stream":
            return status, content_type, b""
        while chunk := sock.recv(65536):
            answer += chunk
        return status, content_type, answer


def _parsed(data: bytes) -> tuple[int, str, bytes]:
    head, _, answer = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    content_type = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-type":
            content_type = value.split(";")[0].strip().lower()
    return int(lines[0].split()[1]), content_type, answer


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{",
        b'{"aggregate_id": "\\ud800"}',
        b"[" * 5000,
        b'{"aggregate_id": "o", "expected_version": 1e999}',
    ],
)
def test_bodies_json_cannot_hold_are_refused_with_a_reason(deployment: Deployment, raw: bytes) -> None:
    response = httpx.post(
        f"{deployment.url()}/orders/commands/PlaceOrder",
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 400 and response.json()["reason"] == "invalid_json", response.text


def test_the_worker_is_healthy_and_appended_only_what_it_accepted_or_queued(deployment: Deployment) -> None:
    with urllib.request.urlopen(f"{deployment.url()}/health", timeout=10) as response:
        assert response.status == 200
    time.sleep(2)  # queued commands are decided meanwhile
    events = list(read_topic(deployment.settings(), f"{deployment.prefix}.orders.events", idle_timeout=2.0))
    unexplained = {
        h.as_dict(m.headers())[h.COMMAND_ID]
        for m in events
        if h.as_dict(m.headers())[h.COMMAND_ID] not in ANSWERED["accepted"] | ANSWERED["queued"]
    }
    assert not unexplained, (
        f"{len(unexplained)} commands appended events without being accepted: {unexplained}"
    )
    print(f"\nfuzzing: {len(events)} events from {len(ANSWERED['accepted'])} accepted commands")
