"""Which worker owns a key, and asking it: the query API's routing between workers.

Owners come from the consumer groups' descriptions, where each worker's stages advertise its URL
signed with the deployment's secret (`streams.wire.signing.signed_url`): a member whose client id
carries no valid signature is not a worker of this deployment and is never sent a request. A
forwarded request goes to the owner's URL with the path as it came (still percent-encoded), the
query without the caller's `access_token`, no `Authorization`, and a worker signature instead;
redirects are not followed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from streams.config import Settings
from streams.kafka import clients
from streams.web.auth import FORWARDED, forward_signature
from streams.web.query.params import MAX_TIMEOUT_S
from streams.web.responses import Rebalancing
from streams.web.tls import client_context
from streams.wire.signing import verified_url

log = logging.getLogger(__name__)


class WorkerUnavailable(Exception):
    """Another worker did not answer, or answered with an error; the message says which."""


@dataclass(frozen=True)
class Forwarded:
    """Another worker's JSON answer, relayed as it came: status, body, content type (a problem
    stays `application/problem+json`) and `Retry-After` (None: it sent none)."""

    status: int
    body: Any
    content_type: str = "application/json"
    retry_after: str | None = None

    def response(self) -> web.Response:
        """The answer to give the caller."""
        headers = None if self.retry_after is None else {"Retry-After": self.retry_after}
        return web.json_response(
            self.body, status=self.status, headers=headers, content_type=self.content_type
        )


class Router:
    """Which worker owns a partition of a consumer group (cached for a few seconds), and the
    HTTP session used to ask it."""

    def __init__(self, settings: Settings, self_url: str, secret: Callable[[], bytes | None]) -> None:
        self._admin = clients.admin(settings)
        self.self_url = self_url
        self.secret = secret
        self._cache: dict[str, tuple[float, dict[int, str]]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._tls = client_context(settings)

    async def owners(self, group: str, *, refresh: bool = False) -> dict[int, str]:
        """partition -> worker URL."""
        cached = self._cache.get(group)
        if cached is not None and not refresh and cached[0] > time.monotonic():
            return cached[1]
        loop = asyncio.get_running_loop()
        owners = await loop.run_in_executor(None, self._describe, group)
        self._cache[group] = (time.monotonic() + 5.0, owners)
        return owners

    def forget(self, group: str) -> None:
        """Drop a group's cached owners (they were found out of date)."""
        self._cache.pop(group, None)

    def _describe(self, group: str) -> dict[int, str]:
        secret = self.secret()
        if secret is None:
            return {}
        description = self._admin.describe_consumer_groups([group])[group].result(timeout=10)
        owners: dict[int, str] = {}
        for member in description.members:
            url = verified_url(secret, member.client_id)
            if url is None:
                log.warning(
                    "group %s: member %s is not a signed worker; not routing to it", group, member.member_id
                )
                continue
            assignment = member.assignment.topic_partitions if member.assignment else []
            for tp in assignment:
                owners.setdefault(tp.partition, url)
        return owners

    def session(self) -> aiohttp.ClientSession:
        """The shared client session (created on first use, inside the event loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=MAX_TIMEOUT_S + 10),
                connector=aiohttp.TCPConnector(ssl=self._tls),  # https workers: STREAMS_WEB_CA_FILE
            )
        return self._session

    async def get(self, url: str, raw_path: str, query: Mapping[str, str]) -> Forwarded:
        """GET another worker (signed as a worker). WorkerUnavailable when it does not answer
        with JSON."""
        secret = self.secret()
        if secret is None:
            raise WorkerUnavailable("this worker is starting (no deployment secret yet)")
        params = {k: v for k, v in query.items() if k != "access_token"}
        target = URL(url).with_path(raw_path, encoded=True).with_query(params)
        headers = {FORWARDED: forward_signature(secret, "GET", url, raw_path, params, time.time())}
        try:
            async with self.session().get(target, headers=headers, allow_redirects=False) as response:
                if response.content_type not in ("application/json", "application/problem+json"):
                    raise WorkerUnavailable(f"worker {url} answered {response.status} without JSON")
                body = await response.json(content_type=None)
                retry = response.headers.get("Retry-After")
                return Forwarded(response.status, body, response.content_type, retry)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WorkerUnavailable(f"worker {url} did not answer: {type(exc).__name__}") from None

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
            raise Rebalancing(f"partition {partition} is not owned here (rebalancing); retry")
        owners = await self.owners(group)
        url = owners.get(partition)
        if url is None or url == self.self_url:
            owners = await self.owners(group, refresh=True)
            url = owners.get(partition)
        if url is None or url == self.self_url:
            raise Rebalancing(f"no worker owns partition {partition} yet; retry")
        forwarded = await self.get(url, request.rel_url.raw_path, {**request.query, "routed": "1"})
        return forwarded.response()
