"""The guard and the per-client limits on a real aiohttp server (no worker, no Kafka).

Forwards between workers are reads only and bound to the method, target host and an escaped
query; every header the guard parses answers 4xx when malformed; the rate limit runs before
the guard and knows the client behind a trusted proxy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.config import Settings
from streams.web import server
from streams.web.auth import FORWARDED, canonical_query, check_secret, forward_signature
from streams.web.peers import Peers
from streams.wire.signing import signature

SECRET = b"unit-secret"
TOKEN = "unit-token"


async def _ok(_request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def _app(settings: Settings) -> web.Application:
    app = web.Application()
    server.install(SimpleNamespace(web=SimpleNamespace(web_app=app)), settings, lambda: SECRET, [])
    app.router.add_routes(
        [
            web.get("/orders/views/v/{id}", _ok),
            web.post("/orders/commands/PlaceOrder", _ok),
            web.get("/realtime/sse", _ok),
            web.get("/health", _ok),
        ]
    )
    return app


def run(settings: Settings, scenario: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(_app(settings), host="127.0.0.1")) as client:
            await scenario(client)

    asyncio.run(main())


SETTINGS = Settings(auth_token=TOKEN, secret=SECRET.decode())


def test_a_forward_of_a_post_is_refused_however_it_is_signed() -> None:
    """Reproduced: a POST signed with the secret (as the code signed before) was accepted (200)."""
    path = "/orders/commands/PlaceOrder"

    async def scenario(client: TestClient[Any, Any]) -> None:
        stamp = str(int(time.time()))
        old = f"{stamp}.{signature(SECRET, 'forward', 'POST', path, '', stamp)}"
        host = f"http://127.0.0.1:{client.port}"
        new = forward_signature(SECRET, "POST", host, path, {}, time.time())
        for forged in (old, new):
            response = await client.post(path, json={}, headers={FORWARDED: forged})
            body = await response.json()
            assert (response.status, body["reason"]) == (403, "bad_forward"), forged

    run(SETTINGS, scenario)


def test_a_forwarded_get_is_bound_to_the_target_host_and_the_escaped_query() -> None:
    path = "/orders/views/v/o-1"

    async def scenario(client: TestClient[Any, Any]) -> None:
        here = f"http://127.0.0.1:{client.port}"
        signed = forward_signature(SECRET, "GET", here, path, {"a": "1&b=2"}, time.time())
        assert (await client.get(path, params={"a": "1&b=2"}, headers={FORWARDED: signed})).status == 200
        # the same signature for a query that differs only in escaping, or for another worker
        assert (await client.get(f"{path}?a=1&b=2", headers={FORWARDED: signed})).status == 403
        elsewhere = forward_signature(SECRET, "GET", "http://worker2:6066", path, {}, time.time())
        assert (await client.get(path, headers={FORWARDED: elsewhere})).status == 403
        assert (await client.head(path, headers={FORWARDED: signed})).status == 403  # method bound

    run(SETTINGS, scenario)


def test_the_canonical_query_escapes_names_and_values() -> None:
    """Reproduced: `{a: "1&b=2"}` and `a=1&b=2` signed the same."""
    assert canonical_query({"a": "1&b=2"}) != canonical_query({"a": "1", "b": "2"})
    assert canonical_query({"a=1": ""}) != canonical_query({"a": "1="})
    assert canonical_query({"b": "2", "a": "1", "access_token": "t"}) == "a=1&b=2"


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("POST", "/orders/commands/PlaceOrder", {"Origin": "http://["}),
        ("GET", "/realtime/sse", {"Origin": "http://["}),
        ("GET", "/realtime/sse", {"Origin": "http://h:99999"}),
        ("GET", "/orders/views/v/o-1", {FORWARDED: "9" * 5000 + ".sig"}),
        ("GET", "/orders/views/v/o-1", {FORWARDED: "no-stamp"}),
    ],
)
def test_a_malformed_header_answers_400_with_its_name(
    method: str, path: str, headers: dict[str, str]
) -> None:
    """Reproduced: `Origin: http://[` and a 5,000-digit stamp answered 500 with a traceback."""

    async def scenario(client: TestClient[Any, Any]) -> None:
        response = await client.request(method, path, headers=headers, json={})
        body = await response.json()
        assert response.status == 400, body
        assert body["reason"] == "invalid_header" and body["field"] == next(iter(headers))

    run(SETTINGS, scenario)


def test_refused_requests_count_against_the_rate_limit() -> None:
    """Reproduced: the guard answered 401 before the limiter ran, so refused requests were free;
    and any `X-Streams-Forwarded` header, valid or not, skipped the limiter."""
    settings = Settings(auth_token=TOKEN, secret=SECRET.decode(), rate_limit=2)

    async def scenario(client: TestClient[Any, Any]) -> None:
        statuses = [(await client.get("/orders/views/v/o-1")).status for _ in range(8)]
        assert statuses[0] == 401 and 429 in statuses
        forged = {FORWARDED: f"{int(time.time())}.forged"}
        statuses = [(await client.get("/orders/views/v/o-1", headers=forged)).status for _ in range(8)]
        assert 429 in statuses

    run(settings, scenario)


def test_behind_a_trusted_proxy_the_forwarded_client_is_limited_not_the_proxy() -> None:
    settings = Settings(rate_limit=2, trusted_proxies=("127.0.0.1",))

    async def scenario(client: TestClient[Any, Any]) -> None:
        def get(client_ip: str) -> Awaitable[Any]:
            return client.get("/orders/views/v/o-1", headers={"X-Forwarded-For": f"{client_ip}, 127.0.0.1"})

        noisy = [(await get("198.51.100.7")).status for _ in range(8)]
        assert 429 in noisy
        assert (await get("198.51.100.8")).status == 200  # another user behind the same proxy
        bad = await get("not-an-address")
        assert bad.status == 400 and (await bad.json())["field"] == "X-Forwarded-For"

    run(settings, scenario)


def test_an_untrusted_peer_cannot_choose_its_address() -> None:
    request = SimpleNamespace(remote="203.0.113.9", headers=_Headers({"X-Forwarded-For": "198.51.100.1"}))
    assert Peers(("10.0.0.0/8",)).client(request) == "203.0.113.9"  # type: ignore[arg-type]
    trusted = SimpleNamespace(remote="10.1.2.3", headers=_Headers({"X-Forwarded-For": "1.2.3.4, 10.9.9.9"}))
    assert Peers(("10.0.0.0/8",)).client(trusted) == "1.2.3.4"  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="STREAMS_TRUSTED_PROXIES"):
        Peers(("not-a-network",))


class _Headers(dict[str, str]):
    def getall(self, name: str) -> list[str]:
        return [self[name]]


def test_a_token_without_an_explicit_secret_refuses_to_start() -> None:
    with pytest.raises(ValueError, match="STREAMS_SECRET"):
        check_secret(Settings(auth_token=TOKEN, secret=""))
    check_secret(Settings(auth_token=TOKEN, secret="s"))
    check_secret(Settings(auth_token="", secret=""))
