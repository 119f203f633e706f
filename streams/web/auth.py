"""Optional bearer-token auth for every HTTP, WebSocket and SSE endpoint of the worker.

With `STREAMS_AUTH_TOKEN` set, a request must carry `Authorization: Bearer <token>`. Browsers
cannot set headers on `WebSocket` or `EventSource`, so `?access_token=<token>` is accepted too.
`/health` stays open for liveness probes. A refused request gets 401 before any WebSocket
upgrade, so a socket without the token is never opened.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from streams.config import Settings

OPEN_PATHS = frozenset({"/health"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def presented_token(request: web.Request) -> str:
    """The token a request carries (bearer header first, then `access_token` query parameter)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query.get("access_token", "")


def is_authorized(request: web.Request, settings: Settings) -> bool:
    """True when no token is configured, the path is open, or the request carries the token."""
    if not settings.auth_token or request.path in OPEN_PATHS:
        return True
    return hmac.compare_digest(presented_token(request).encode(), settings.auth_token.encode())


def auth_middleware(settings: Settings) -> Middleware:
    """An aiohttp middleware answering 401 to requests without the configured token."""

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_authorized(request, settings):
            return web.json_response(
                {"error": "missing or wrong bearer token"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="streams"'},
            )
        return await handler(request)

    return check


def install(web_app: web.Application, settings: Settings) -> None:
    """Add the middleware to the worker's aiohttp application (before the server starts)."""
    if settings.auth_token:
        web_app.middlewares.append(auth_middleware(settings))
