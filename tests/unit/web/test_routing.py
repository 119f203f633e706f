"""The query routing's 503s carry `Retry-After` like every other 503: when no worker owns the
partition, and when the owner it forwarded to answered one (relayed with its header and type)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.config import Settings
from streams.web.problems import problems
from streams.web.query import routing
from streams.web.query.routing import Router
from streams.web.responses import problem

SELF = "http://127.0.0.1:1"
PARTITION = 3


def _fixed(owners: dict[int, str]) -> Any:
    async def owned(_group: str, *, refresh: bool = False) -> dict[int, str]:
        return owners

    return owned


def _router(monkeypatch: pytest.MonkeyPatch, owners: dict[int, str]) -> Router:
    """A router that finds `owners` (an owner server given to `_ask` replaces them)."""
    monkeypatch.setattr(routing.clients, "admin", lambda _settings: None)  # no broker in a unit test
    router = Router(Settings(), SELF, lambda: b"secret")
    router.owners = _fixed(owners)  # type: ignore[method-assign]
    return router


def _ask(router: Router, owner: web.Application | None = None) -> tuple[int, dict[str, str], Any]:
    async def not_here() -> web.Response | None:
        return None

    async def handler(request: web.Request) -> web.Response:
        return await router.routed(request, "group", PARTITION, not_here)

    app = web.Application(middlewares=[problems])
    app.router.add_get("/orders/views/v/o-1", handler)

    async def main() -> tuple[int, dict[str, str], Any]:
        servers = []
        try:
            if owner is not None:
                servers.append(TestServer(owner, host="127.0.0.1"))
                await servers[0].start_server()
                router.owners = _fixed({PARTITION: f"http://127.0.0.1:{servers[0].port}"})  # type: ignore[method-assign]
            async with TestClient(TestServer(app, host="127.0.0.1")) as client:
                response = await client.get("/orders/views/v/o-1")
                return response.status, dict(response.headers), await response.json(content_type=None)
        finally:
            for server in servers:
                await server.close()
            if router._session is not None:
                await router._session.close()

    return asyncio.run(main())


def test_no_worker_owning_the_partition_is_a_503_with_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    status, headers, body = _ask(_router(monkeypatch, {}))
    assert status == 503
    assert headers["Retry-After"] == "1"
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["reason"] == "rebalancing" and f"partition {PARTITION}" in body["detail"]


def test_a_partition_owned_only_by_this_worker_yet_not_served_is_a_503_with_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    status, headers, _ = _ask(_router(monkeypatch, {PARTITION: SELF}))
    assert status == 503 and headers["Retry-After"] == "1"


def test_the_owners_503_is_relayed_with_its_retry_after_and_problem_type(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reproduced: the forwarding worker answered the owner's 503 as plain JSON without Retry-After."""

    async def moving(_request: web.Request) -> web.Response:
        detail = f"partition {PARTITION} is not owned here (rebalancing); retry"
        return problem(503, detail, reason="rebalancing", headers={"Retry-After": "1"})

    owner = web.Application()
    owner.router.add_get("/orders/views/v/o-1", moving)
    status, headers, body = _ask(_router(monkeypatch, {}), owner)
    assert status == 503
    assert headers["Retry-After"] == "1"
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["reason"] == "rebalancing"


def test_the_owners_document_is_relayed_as_json(monkeypatch: pytest.MonkeyPatch) -> None:
    async def found(_request: web.Request) -> web.Response:
        return web.json_response({"entity_id": "o-1"})

    owner = web.Application()
    owner.router.add_get("/orders/views/v/o-1", found)
    status, headers, body = _ask(_router(monkeypatch, {}), owner)
    assert status == 200 and body == {"entity_id": "o-1"}
    assert headers["Content-Type"].startswith("application/json") and "Retry-After" not in headers
