"""An HTTP command that times out forgets its result future; a non-JSON body says so."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.client import ResultWaiter
from streams.config import Settings
from streams.contexts.registry import get_context
from streams.kafka.runtime import ContextRuntime, Runtimes
from streams.web.commands import CommandEndpoints
from streams.web.envelope import BadEnvelope, parse_envelope


class _Client:
    """A command client whose results never come."""

    def __init__(self) -> None:
        self.waiting: dict[str, Future[Any]] = {}

    def send(self, aggregate_id: str, command: Any, **kw: Any) -> tuple[str, Future[Any]]:
        command_id = f"c-{len(self.waiting)}"
        self.waiting[command_id] = Future()
        return command_id, self.waiting[command_id]

    def forget(self, command_id: str, future: Future[Any] | None) -> None:
        if self.waiting.get(command_id) is future:
            del self.waiting[command_id]


def test_a_command_that_times_out_is_forgotten() -> None:
    """Reproduced: every timed-out HTTP command left its future in the client's pending map."""
    orders = get_context("orders")
    runtimes = Runtimes(Settings(), {"orders": orders})
    runtimes._runtimes["orders"] = ContextRuntime.offline(orders)  # the worker's, connected already
    endpoints = CommandEndpoints(Settings(), runtimes)
    fake = _Client()
    endpoints._clients["orders"] = fake  # type: ignore[assignment]
    app = web.Application()
    app.router.add_routes(endpoints.routes())

    async def main() -> None:
        async with TestClient(TestServer(app)) as client:
            for i in range(3):
                body = {"aggregate_id": f"o-{i}", "data": {"customer_id": "c", "currency": "EUR"}}
                response = await client.post("/orders/commands/PlaceOrder?timeout=0.05", json=body)
                assert response.status == 202, await response.text()

    asyncio.run(main())
    assert fake.waiting == {}


def test_the_waiter_forgets_one_future_of_a_command_id() -> None:
    waiter = ResultWaiter.__new__(ResultWaiter)
    waiter._pending, waiter._lock = {}, __import__("threading").Lock()
    first, second = waiter.expect("c-1"), waiter.expect("c-1")
    waiter.forget("c-1", first)
    assert first.cancelled() and waiter._pending == {"c-1": [second]}
    waiter.forget("c-1", second)
    assert waiter.pending == 0


@pytest.mark.parametrize("raw", [b"nope", b"n", b"{", b"\xff"])
def test_a_body_that_is_not_json_says_so(raw: bytes) -> None:
    """Issue 30: a non-JSON body answered with the parser's words (`invalid literal ...`)."""
    with pytest.raises(BadEnvelope) as bad:
        parse_envelope(raw)
    assert bad.value.reason == "invalid_json"
    assert str(bad.value).startswith("the body is not JSON") and "literal" not in str(bad.value)
