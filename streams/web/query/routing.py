"""Which worker owns a key, and asking it: the query API's routing between workers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from streams.config import Settings
from streams.kafka import clients
from streams.web.query.params import MAX_TIMEOUT_S
from streams.web.responses import ok, problem


class Router:
    """Which worker owns a partition of a consumer group (cached for a few seconds), and the
    HTTP session used to ask it."""

    def __init__(self, settings: Settings, self_url: str) -> None:
        self._admin = clients.admin(settings)
        self.self_url = self_url
        self._cache: dict[str, tuple[float, dict[int, str]]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def owners(self, group: str, *, refresh: bool = False) -> dict[int, str]:
        """partition -> worker URL."""
        cached = self._cache.get(group)
        if cached is not None and not refresh and cached[0] > time.monotonic():
            return cached[1]
        loop = asyncio.get_running_loop()
        owners = await loop.run_in_executor(None, self._describe, group)
        self._cache[group] = (time.monotonic() + 5.0, owners)
        return owners

    def _describe(self, group: str) -> dict[int, str]:
        description = self._admin.describe_consumer_groups([group])[group].result(timeout=10)
        owners: dict[int, str] = {}
        for member in description.members:
            assignment = member.assignment.topic_partitions if member.assignment else []
            for tp in assignment:
                owners.setdefault(tp.partition, member.client_id)
        return owners

    def session(self) -> aiohttp.ClientSession:
        """The shared client session (created on first use, inside the event loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=MAX_TIMEOUT_S + 10))
        return self._session

    async def get(self, url: str, path: str, query: dict[str, str]) -> tuple[int, Any]:
        """GET another worker; (status, JSON body)."""
        async with self.session().get(f"{url}{path}", params=query) as response:
            return response.status, await response.json()

    async def routed(
        self,
        request: web.Request,
        group: str,
        partition: int,
        local: Callable[[], Awaitable[web.Response | None]],
    ) -> web.Response:
        """Answer from this worker when it owns `partition` (`local` gives None otherwise), else
        forward the request to the owner."""
        answer = await local()
        if answer is not None:
            return answer
        if request.query.get("routed"):
            return problem(503, f"partition {partition} is not owned here (rebalancing); retry")
        owners = await self.owners(group)
        url = owners.get(partition)
        if url is None or url == self.self_url:
            owners = await self.owners(group, refresh=True)
            url = owners.get(partition)
        if url is None or url == self.self_url:
            return problem(503, f"no worker owns partition {partition} yet; retry")
        status, body = await self.get(url, request.url.path, {**request.query, "routed": "1"})
        return ok(body, status=status)
