"""The dashboard page on a real aiohttp server behind the guard (no worker, no Kafka)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.config import Settings
from streams.web import server
from streams.web.dashboard import DashboardEndpoints
from streams.web.health import HealthEndpoints

SETTINGS = Settings(auth_token="unit-token", secret="unit-secret")


def _get(path: str, worker: str = "w1") -> tuple[int, str, dict[str, str]]:
    async def main() -> tuple[int, str, dict[str, str]]:
        app = web.Application()
        readiness = SimpleNamespace(missing=lambda: [])
        groups = [DashboardEndpoints(worker), HealthEndpoints(SETTINGS, readiness)]  # type: ignore[arg-type]
        server.install(SimpleNamespace(web=SimpleNamespace(web_app=app)), SETTINGS, lambda: b"s", groups)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            response = await client.get(path)
            return response.status, await response.text(), dict(response.headers)

    return asyncio.run(main())


def test_the_page_is_open_and_names_its_worker_escaped() -> None:
    status, page, headers = _get("/dashboard", worker='w"1<script>')
    assert status == 200
    assert '<meta name="streams-worker" content="w&quot;1&lt;script&gt;">' in page
    assert "{{worker}}" not in page
    assert "connect-src 'self'" in headers["Content-Security-Policy"]


def test_the_page_loads_nothing_from_elsewhere() -> None:
    _, page, _ = _get("/dashboard")
    assert "http://" not in page and "https://" not in page and "<script src" not in page


def test_the_metrics_it_polls_still_need_the_token() -> None:
    assert _get("/metrics")[0] == 401
