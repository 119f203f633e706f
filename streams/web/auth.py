"""Who may call the worker: the Host and Origin allow-lists, the bearer token, and the workers'
own signed forwards.

- **Host**: a request must name this worker (localhost, the advertised URL's host, or
  `STREAMS_ALLOWED_HOSTS`); anything else is refused (403, `host_not_allowed`), so a page
  whose name was rebound to 127.0.0.1 (DNS rebinding) cannot reach it.
- **Origin**: a browser's page may open a WebSocket or SSE stream, or send anything but a GET,
  only from the worker's own origin or `STREAMS_ALLOWED_ORIGINS` (403, `origin_not_allowed`).
  Requests without an `Origin` header (non-browser clients) pass.
- **Bearer token**: with `STREAMS_AUTH_TOKEN` set, a request must carry `Authorization: Bearer
  <token>` (or, for WebSocket and EventSource, which cannot set headers, `?access_token=`).
  `/health`, `/openapi.json` and `/docs` stay open. Tokens are compared in constant time, before any WebSocket
  upgrade.
- **Workers**: a request forwarded by another worker carries `X-Streams-Forwarded`, a signature
  with the deployment's secret over the method, path and query and a timestamp (valid for a
  minute); it stands for the caller's credentials, which are never forwarded.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from streams.config import Settings
from streams.web.responses import problem
from streams.wire.signing import signature, verify

OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs"})
FORWARDED = "X-Streams-Forwarded"
FORWARD_VALID_S = 60.0
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SecretSource = Callable[[], bytes | None]


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
    presented = presented_token(request).encode("utf-8", "surrogateescape")
    return hmac.compare_digest(presented, settings.auth_token.encode())


def canonical_query(query: Mapping[str, str]) -> str:
    """A query as signed: sorted, without the caller's `access_token`."""
    return "&".join(f"{k}={v}" for k, v in sorted(query.items()) if k != "access_token")


def forward_signature(secret: bytes, method: str, raw_path: str, query: Mapping[str, str], at: float) -> str:
    """The `X-Streams-Forwarded` value of a request one worker forwards to another."""
    stamp = str(int(at))
    return f"{stamp}.{signature(secret, 'forward', method, raw_path, canonical_query(query), stamp)}"


def is_forwarded_by_worker(request: web.Request, secret: bytes | None) -> bool:
    """True when the request carries a valid, fresh signature of a worker of this deployment."""
    given = request.headers.get(FORWARDED, "")
    stamp, _, sig = given.partition(".")
    if secret is None or not stamp.isdigit() or abs(time.time() - int(stamp)) > FORWARD_VALID_S:
        return False
    parts = (request.method, request.rel_url.raw_path, canonical_query(request.query), stamp)
    return verify(secret, sig, "forward", *parts)


def check_advertised_url(url: str) -> None:
    """ValueError unless `url` is a plain `http(s)://host:port` a worker can be reached at."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"STREAMS_ADVERTISED_URL {url!r}: expected http(s)://host[:port]")
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError(f"STREAMS_ADVERTISED_URL {url!r}: no credentials, path, query or fragment")


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """Host names the web server answers to."""
    advertised = urlsplit(settings.self_url()).hostname or ""
    return LOCAL_HOSTS | {advertised.lower(), *(h.lower() for h in settings.allowed_hosts)}


def _host_of(request: web.Request) -> str:
    host = request.host or ""
    if host.startswith("["):  # [::1]:6066
        return host[: host.find("]") + 1].lower()
    return host.rsplit(":", 1)[0].lower() if host.count(":") == 1 else host.lower()


def _origin_allowed(request: web.Request, settings: Settings) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    same = parts.netloc.lower() == (request.host or "").lower()
    return same or origin.rstrip("/") in settings.allowed_origins


def guard(settings: Settings, secret: SecretSource) -> Middleware:
    """The middleware refusing what the rules above refuse, before any handler runs."""
    hosts = allowed_hosts(settings)

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _host_of(request) not in hosts:
            return problem(403, "this worker does not answer to that host name", reason="host_not_allowed")
        streaming = request.path.startswith("/realtime/")
        if (streaming or request.method not in ("GET", "HEAD")) and not _origin_allowed(request, settings):
            return problem(403, "requests from that origin are not allowed", reason="origin_not_allowed")
        if FORWARDED in request.headers:
            if is_forwarded_by_worker(request, secret()):
                return await handler(request)
            return problem(403, "the forwarding signature is not valid", reason="bad_forward")
        if not is_authorized(request, settings):
            response = problem(401, "missing or wrong bearer token", reason="unauthorized")
            response.headers["WWW-Authenticate"] = 'Bearer realm="streams"'
            return response
        return await handler(request)

    return check


def install(web_app: web.Application, settings: Settings, secret: SecretSource) -> None:
    """Add the guard to the worker's aiohttp application (before the server starts)."""
    web_app.middlewares.append(guard(settings, secret))
