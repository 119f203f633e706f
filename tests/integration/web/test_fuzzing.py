"""Property-based fuzzing of a live worker from its own OpenAPI document (schemathesis), of
the command envelope and of the headers the server parses (Hypothesis): no 5xx, no hang, the
worker healthy afterwards, and, after each test, no event appended for a request the API refused
and every accepted command's events in the log (`Ledger`).
"""

from __future__ import annotations

import json
import socket
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from streams.client import CommandClient, read_topic
from streams.config import Settings
from streams.contexts.registry import get_context
from streams.core.commands import CommandResult
from streams.web.openapi import openapi_document
from streams.wire import headers as h
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment, deployed, wait_until
from tests.processes.order_timeout import process as order_timeout

pytestmark = pytest.mark.integration

# the streaming endpoints never end by themselves: test_realtime.py and test_browser_safety.py cover them
SCHEMA = schemathesis.openapi.from_dict(
    openapi_document(Settings(), {"orders": get_context("orders")}, {order_timeout.name: order_timeout})
).exclude(path_regex="^/realtime/")
EXAMPLES = 25
"""Examples per operation (the default 100 would take ~15 minutes on this machine)."""


@dataclass
class Ledger:
    """The commands one test had answered 200 (accepted) or 202 (queued), checked against the log
    after the test: every accepted command's events are there, and every event appended meanwhile
    comes from a command the API accepted or queued (none from a refused request)."""

    settings: Settings
    client: CommandClient
    events_end: dict[int, int]
    results_end: dict[int, int]
    accepted: set[str] = field(default_factory=set)
    queued: set[str] = field(default_factory=set)

    @classmethod
    def start(cls, settings: Settings, client: CommandClient) -> Ledger:
        topics = client.runtime.topics
        return cls(settings, client, _ends(settings, topics.events), _ends(settings, topics.results))

    def note(self, status: int, body: bytes | str) -> None:
        if status in (200, 202):
            (self.accepted if status == 200 else self.queued).add(json.loads(body)["command_id"])

    def _since(self, topic: str, ends: dict[int, int]) -> list[Any]:
        return [
            m
            for m in read_topic(self.settings, topic, idle_timeout=0.5)
            if m.offset() > ends.get(m.partition(), -1)
        ]

    def verify(self) -> None:
        topics, codec = self.client.runtime.topics, self.client.runtime.codec

        def decided() -> list[dict[str, list[CommandResult]]] | None:  # a list: {} is an answer too
            results: dict[str, list[CommandResult]] = {}
            for m in self._since(topics.results, self.results_end):
                results.setdefault(m.key().decode(), []).append(codec.decode(m.value()).message)
            return [results] if self.accepted | self.queued <= results.keys() else None

        (results,) = wait_until(decided, "a result for every accepted and queued command", timeout=60)
        events = self._since(topics.events, self.events_end)
        by_place = {(m.partition(), m.offset()): h.as_dict(m.headers())[h.COMMAND_ID] for m in events}
        explained = {cid for cid in self.accepted | self.queued if any(r.accepted for r in results[cid])}
        unexplained = set(by_place.values()) - explained
        assert not unexplained, f"{len(unexplained)} commands appended events unanswered: {unexplained}"
        for cid in explained:  # and their events are where their results say
            for result in results[cid]:
                if result.accepted and not result.duplicate:
                    places = {(result.event_partition, offset) for offset in result.event_offsets}
                    assert {by_place.get(place) for place in places} <= {cid}, (cid, result)
        print(f" [{len(events)} events from {len(explained)} accepted commands]", end="")


def _ends(settings: Settings, topic: str) -> dict[int, int]:
    """The last offset of each partition of `topic` that holds a record."""
    ends: dict[int, int] = {}
    for m in read_topic(settings, topic, idle_timeout=0.5):
        ends[m.partition()] = max(ends.get(m.partition(), -1), m.offset())
    return ends


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployed(
        tmp_path_factory.mktemp("worker"),
        "fz",
        # a process over orders, so that /processes/... reads a real changelog: every order placed
        # gets an instance whose deadline (a day) never fires while the ledger counts orders' events
        STREAMS_PROCESS_MODULES="tests.processes.order_timeout",
        ORDER_TIMEOUT_MS=str(24 * 3600 * 1000),
        STREAMS_SINKS="0",
        STREAMS_TRUSTED_PROXIES="127.0.0.1",  # X-Forwarded-For is parsed
        STREAMS_RATE_LIMIT="100000",  # the limiter runs on every request, without limiting
    ) as dep:
        yield dep


@pytest.fixture
def ledger(deployment: Deployment, client: CommandClient) -> Iterator[Ledger]:
    """This test's answered commands, checked against the log when it ends."""
    book = Ledger.start(deployment.settings(), client)
    yield book
    book.verify()


@SCHEMA.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_the_document_allows_or_forbids_gets_a_5xx(
    case: Any, deployment: Deployment, ledger: Ledger
) -> None:
    if isinstance(case.query, dict) and "timeout" in case.query:
        case.query["timeout"] = 0.5  # a request may wait for a view up to a minute: not here
    started = time.monotonic()
    response = case.call(base_url=deployment.url(), timeout=30)
    assert time.monotonic() - started < 30, "the worker hung"
    case.validate_response(response, checks=[not_a_server_error])
    if case.method == "POST":
        ledger.note(response.status_code, response.content)


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
def test_no_command_envelope_gets_a_5xx(
    deployment: Deployment, ledger: Ledger, body: Any, command: str
) -> None:
    response = httpx.post(
        f"{deployment.url()}/orders/commands/{command}",
        content=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        params={"timeout": "2"},
        timeout=30,
    )
    assert response.status_code < 500, response.text
    ledger.note(response.status_code, response.content)
    if response.status_code not in (200, 202):
        assert response.headers["content-type"].startswith("application/problem+json"), response.headers
        assert response.json()["reason"], response.text


@given(
    process=st.sampled_from([order_timeout.name, "nope", "views"]),
    correlation_id=st.text(min_size=1) | st.sampled_from(["o-fz", "o-1"]),
)
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_process_instance_request_gets_a_5xx(
    deployment: Deployment, process: str, correlation_id: str
) -> None:
    """Any text as a correlation id (percent-escaped, surrogates too): 200, or a 4xx with a reason."""
    quoted = urllib.parse.quote(correlation_id, safe="", errors="surrogatepass")
    response = httpx.get(f"{deployment.url()}/processes/{process}/{quoted}", timeout=30)
    assert response.status_code < 500, response.text
    if response.headers["content-type"].startswith("application/problem+json"):
        assert response.json()["reason"], response.text
    else:  # an id such as `..` the client resolves away leaves a path no route serves
        assert response.status_code in (200, 404), response.text


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
    deployment: Deployment, ledger: Ledger, headers: dict[str, str], target: tuple[str, str]
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
    if method == "POST":
        ledger.note(status, answer)


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


def test_the_worker_is_healthy_after_the_fuzzing(deployment: Deployment) -> None:
    with urllib.request.urlopen(f"{deployment.url()}/health", timeout=10) as response:
        assert response.status == 200
