"""Property-based fuzzing of a live worker from its own OpenAPI document (schemathesis), and of
the command envelope (Hypothesis): no 5xx, no hang, the worker healthy afterwards, and no event
appended for a request the API refused.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
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
    with deployed(tmp_path_factory.mktemp("worker"), "fz", STREAMS_SINKS="0") as dep:
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
