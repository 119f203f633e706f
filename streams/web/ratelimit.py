"""A per-client request rate (`STREAMS_RATE_LIMIT` requests per second, bursts of twice that):
beyond it, 429 with `Retry-After`. A client is its address (`streams.web.peers`: behind a
trusted proxy, the address it forwarded); requests validly forwarded by other workers and
`/health` are not counted. It runs before the guard, so refused requests (401, 403) count too.
Off (0) by default."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from streams.web.auth import FORWARDED, SecretSource, is_forwarded_by_worker
from streams.web.peers import Peers
from streams.web.responses import BadHeader, header_problem, problem

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_CLIENTS = 10_000
"""Clients remembered at once (the least recent are forgotten: a fresh bucket)."""


class TokenBuckets:
    """One token bucket per client: `rate` tokens a second, at most `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, client: str, now: float) -> float:
        """0 when `client` may go on, else the seconds until it may."""
        tokens, then = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[client] = (tokens, now)
        if len(self._buckets) > MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return wait


def _is_worker(request: web.Request, secret: SecretSource) -> bool:
    if FORWARDED not in request.headers:
        return False
    try:
        return is_forwarded_by_worker(request, secret())
    except BadHeader:
        return False  # counted here, refused by the guard


def rate_limit(rate: float, peers: Peers, secret: SecretSource) -> Middleware:
    """The middleware answering 429 beyond `rate` requests a second per client."""
    buckets = TokenBuckets(rate, 2 * rate)

    @web.middleware
    async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/health" or _is_worker(request, secret):
            return await handler(request)
        try:
            client = peers.client(request)
        except BadHeader as exc:
            return header_problem(exc)
        wait = buckets.take(client, time.monotonic())
        if wait:
            retry = str(max(1, math.ceil(wait)))
            detail = f"more than {rate:g} requests a second from this client"
            return problem(429, detail, reason="rate_limited", headers={"Retry-After": retry})
        return await handler(request)

    return limit
