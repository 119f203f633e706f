"""`GET /health`: a stage that stopped by itself (a window stage's poison policy STOP) makes the
worker unhealthy with the reason, like a topic mismatch, and without `Retry-After`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams import app as worker
from streams.config import Settings
from streams.kafka.hosting import Readiness
from streams.kafka.runtime import TOPIC_PROBLEMS
from streams.web.health import HealthEndpoints


def _health(
    readiness: Readiness, stopped: Callable[[], dict[str, str]] = dict
) -> tuple[int, dict[str, str], Any]:
    assert not TOPIC_PROBLEMS.all()  # another test left a mismatch behind: it would answer first
    app = web.Application()
    app.add_routes(HealthEndpoints(Settings(), readiness, stopped).routes())

    async def main() -> tuple[int, dict[str, str], Any]:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            response = await client.get("/health")
            return response.status, dict(response.headers), await response.json()

    return asyncio.run(main())


def test_a_worker_whose_parts_started_and_none_stopped_is_healthy() -> None:
    status, _, body = _health(Readiness())
    assert status == 200 and body["status"] == "ok"


def test_a_stopped_stage_makes_the_worker_unhealthy_with_the_reason() -> None:
    why = "devices.telemetry: the broker refuses a record of the batch (MSG_SIZE_TOO_LARGE)"
    status, headers, body = _health(Readiness(), lambda: {"windows devices.telemetry": why})
    assert status == 503
    assert "Retry-After" not in headers  # waiting does not restart a stopped stage
    assert body["status"] == "stopped"
    assert body["stopped"] == [{"stage": "windows devices.telemetry", "error": why}]
    assert body["app"] == Settings().app_id


def test_a_stopped_stage_is_reported_before_parts_still_starting() -> None:
    status, _, body = _health(Readiness("read-side"), lambda: {"windows a.b": "poison"})
    assert status == 503 and body["status"] == "stopped"


def test_the_worker_reports_the_error_of_each_window_stage_that_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The composition root hands `/health` its window stages' `error` (set under PoisonPolicy.STOP)."""
    running = SimpleNamespace(name="devices.telemetry", error="")
    stopped = SimpleNamespace(name="devices.battery", error="a poison record")
    monkeypatch.setattr(worker, "window_stages", [running, stopped])
    assert worker.stopped_stages() == {"windows devices.battery": "a poison record"}
