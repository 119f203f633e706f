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
  `/health`, `/openapi.json`, `/docs` and `/dashboard` (a page without data) stay open. Tokens are
  compared in constant time, before any WebSocket upgrade.
- **Workers**: a GET (or HEAD) forwarded by another worker carries `X-Streams-Forwarded`, a
  signature with the deployment's secret over the method, the target host name, the path, the
  percent-escaped canonical query and a timestamp (valid for a minute); it stands for the caller's
  credentials, which are never forwarded. Only reads are forwarded between workers (commands go
  through Kafka), so a forward of any other method is refused (403, `bad_forward`).
- **Malformed headers** the guard parses (`Origin`, `X-Streams-Forwarded`, `X-Forwarded-For`
  from a trusted proxy) answer 400 (`invalid_header`, with the header's name as `field`).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from streams.config import Settings
from streams.web.responses import BadHeader, header_problem, problem
from streams.wire.signing import signature, verify

OPEN_PATHS = frozenset({"/health", "/openapi.json", "/docs", "/dashboard"})
FORWARDED = "X-Streams-Forwarded"
FORWARD_VALID_S = 60.0
FORWARD_METHODS = frozenset({"GET", "HEAD"})
"""The only methods a worker forwards (reads); commands are never forwarded."""
STAMP_DIGITS = 12
"""The most digits a forward's timestamp may have (seconds since 1970 have 10 until 2286)."""
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


def canonical_query(query: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """A query as signed: every pair but the caller's `access_token`, sorted, each name and value
    percent-escaped (so `{a: "1&b=2"}` and `a=1&b=2` sign differently)."""
    pairs = query.items() if isinstance(query, Mapping) else query
    kept = sorted((k, v) for k, v in pairs if k != "access_token")
    return "&".join(f"{_escaped(k)}={_escaped(v)}" for k, v in kept)


def _escaped(text: str) -> str:
    return quote(text, safe="", errors="surrogatepass")


def host_name(netloc: str) -> str:
    """The host name of a `host[:port]` (lower case, IPv6 without brackets; "" when malformed)."""
    try:
        return urlsplit(f"//{netloc}").hostname or ""
    except ValueError:
        return ""


def forward_signature(
    secret: bytes, method: str, target_url: str, raw_path: str, query: Mapping[str, str], at: float
) -> str:
    """The `X-Streams-Forwarded` value of a request one worker forwards to the worker at `target_url`."""
    stamp = str(int(at))
    host = urlsplit(target_url).hostname or ""
    return f"{stamp}.{signature(secret, 'forward', method, host, raw_path, canonical_query(query), stamp)}"


def is_forwarded_by_worker(request: web.Request, secret: bytes | None) -> bool:
    """True when the request is a GET/HEAD carrying a valid, fresh signature of a worker of this
    deployment (BadHeader when the header is not `<digits>.<signature>`)."""
    given = request.headers.get(FORWARDED, "")
    stamp, _, sig = given.partition(".")
    if not stamp.isdigit() or len(stamp) > STAMP_DIGITS or not sig.isascii():
        raise BadHeader(FORWARDED, f"{FORWARDED} must be <timestamp>.<signature>")
    if (
        secret is None
        or request.method not in FORWARD_METHODS
        or abs(time.time() - int(stamp)) > FORWARD_VALID_S
    ):
        return False
    host = host_name(request.host or "")
    parts = (request.method, host, request.rel_url.raw_path, canonical_query(request.query.items()), stamp)
    return verify(secret, sig, "forward", *parts)


def check_advertised_url(url: str) -> None:
    """ValueError unless `url` is a plain `http(s)://host:port` a worker can be reached at."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"STREAMS_ADVERTISED_URL {url!r}: expected http(s)://host[:port]")
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError(f"STREAMS_ADVERTISED_URL {url!r}: no credentials, path, query or fragment")


def check_secret(settings: Settings) -> None:
    """ValueError when a bearer token is set without `STREAMS_SECRET`: the secret kept in Kafka
    can be read by any Kafka client, and it signs forwards, resume tokens and worker URLs."""
    if settings.auth_token and not settings.secret:
        raise ValueError(
            "STREAMS_AUTH_TOKEN is set but STREAMS_SECRET is not: set STREAMS_SECRET (the same on every "
            "worker; e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`), since a secret kept "
            "in Kafka can be read by any Kafka client and used instead of the token"
        )


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
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise BadHeader("Origin", "Origin must be scheme://host[:port] or null") from None
    same = parts.netloc.lower() == (request.host or "").lower()
    return same or origin.rstrip("/") in settings.allowed_origins


def guard(settings: Settings, secret: SecretSource) -> Middleware:
    """The middleware refusing what the rules above refuse, before any handler runs."""
    hosts = allowed_hosts(settings)

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await _check(request, handler)
        except BadHeader as exc:
            return header_problem(exc)

    async def _check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _host_of(request) not in hosts:
            return problem(403, "this worker does not answer to that host name", reason="host_not_allowed")
        streaming = request.path.startswith("/realtime/")
        if (streaming or request.method not in ("GET", "HEAD")) and not _origin_allowed(request, settings):
            return problem(403, "requests from that origin are not allowed", reason="origin_not_allowed")
        if FORWARDED in request.headers:
            if is_forwarded_by_worker(request, secret()):
                return await handler(request)
            if request.method not in FORWARD_METHODS:
                detail = f"workers forward only GET and HEAD requests, not {request.method}"
                return problem(403, detail, reason="bad_forward")
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
