"""A commands topic that differs from its declaration: the worker says so on /health, and an HTTP
command is answered 503 `topic_mismatch` (the operator's to fix), never a 500, and is not sent."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import StackEndpoints
from tests.integration.windows.test_guards import settled_health, with_a_one_partition_topic
from tests.integration.workers import json_answer

pytestmark = pytest.mark.integration


def test_a_command_to_a_mismatched_topic_answers_503_with_the_reason(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    dep, commands = with_a_one_partition_topic(tmp_path, "orders", lambda t: t.commands)
    dep.start("w1")
    try:
        status, body = settled_health(dep)
        assert (status, body["status"]) == (503, "topic_mismatch"), body
        body = {"aggregate_id": "o-1", "data": {"customer_id": "c-1", "currency": "EUR"}}
        status, answer = json_answer(
            urllib.request.Request(
                f"{dep.url()}/orders/commands/PlaceOrder",
                json.dumps(body).encode(),
                {"Content-Type": "application/json"},
            )
        )
        assert status == 503, answer
        assert answer["reason"] == "topic_mismatch"
        assert f"topic {commands}: partitions is 1, declared 4" in answer["detail"]
    finally:
        dep.stop_all()
