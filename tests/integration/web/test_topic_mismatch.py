"""A commands topic that differs from its declaration: the worker says so on /health, and an HTTP
command is answered 503 `topic_mismatch` (the operator's to fix), never a 500, and is not sent."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from streams.wire.topics import ContextTopics
from tests.conftest import StackEndpoints
from tests.integration.windows.fleet import wait_until
from tests.integration.workers import Deployment

pytestmark = pytest.mark.integration


def call(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    """GET (or POST `body` as JSON) and the status and JSON body of the answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_a_command_to_a_mismatched_topic_answers_503_with_the_reason(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    dep = Deployment(
        prefix=f"tmm{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path,
        extra_env={"STREAMS_CONTEXTS": "orders", "STREAMS_SINKS": "0"},
    )
    settings = dep.settings()
    commands = ContextTopics("orders", settings.topic_prefix).commands
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    admin.create_topics([NewTopic(commands, num_partitions=1, replication_factor=1)])[commands].result(30)
    dep.start("w1")
    try:

        def settled() -> tuple[int, dict[str, Any]] | None:
            try:
                status, body = call(f"{dep.url()}/health")
            except OSError:
                return None
            return (status, body) if body.get("status") != "starting" else None

        status, body = wait_until(settled, "the worker's /health to settle", timeout=180, every=0.5)
        assert (status, body["status"]) == (503, "topic_mismatch"), body
        status, answer = call(
            f"{dep.url()}/orders/commands/PlaceOrder",
            {"aggregate_id": "o-1", "data": {"customer_id": "c-1", "currency": "EUR"}},
        )
        assert status == 503, answer
        assert answer["reason"] == "topic_mismatch"
        assert f"topic {commands}: partitions is 1, declared 4" in answer["detail"]
    finally:
        dep.stop_all()
