"""`GET /<ctx>/views`, `/<ctx>/views/<view>` (filtered pages) and `/<ctx>/views/<view>/<id>`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from streams import metrics
from streams.config import Settings
from streams.core.views import Document
from streams.read.documents import ViewDocuments
from streams.read.readside import status
from streams.web.query.lookup import ReadLookup
from streams.web.query.paging import LocalPage, local_page, merge
from streams.web.query.params import BadParameter, document_json, int_param, timeout_param
from streams.web.query.routing import Router, WorkerUnavailable
from streams.web.responses import NotFound, NotReached, Rebalancing, TooManyWaiters, ok
from streams.wire.topics import partition_for


@dataclass(frozen=True)
class Target:
    """What a waiting document request waits for (None: not asked)."""

    aggregate_id: str
    min_version: int | None
    min_offset: int | None

    def reached(self, doc: Document | None, position: int) -> bool:
        """Whether a document, at a store position (next input offset), satisfies the request."""
        if self.min_version is not None and (doc is None or doc.seen(self.aggregate_id) < self.min_version):
            return False
        return self.min_offset is None or position > self.min_offset


RESERVED = frozenset({"limit", "after", "routed", "local", "partitions", "access_token"})
"""Query parameters of a list request that are not filters."""


class DocumentEndpoints:
    """Read models: what each view serves, one document, filtered pages."""

    def __init__(self, settings: Settings, lookup: ReadLookup, router: Router) -> None:
        self.settings = settings
        self.lookup = lookup
        self.router = router
        self._waiting = 0

    def routes(self) -> list[web.AbstractRouteDef]:
        """This group's routes."""
        return [
            web.get("/{context}/views", self.views),
            web.get("/{context}/views/{view}", self.page),
            web.get("/{context}/views/{view}/{entity_id}", self.document),
        ]

    async def views(self, request: web.Request) -> web.Response:
        """`GET /<ctx>/views`: each view version, served or building, with its lag and error."""
        context = request.match_info["context"]
        side = self.lookup.side(context)
        return ok({"context": context, "worker": self.lookup.url, "views": status(side)})

    async def document(self, request: web.Request) -> web.Response:
        """`GET /<ctx>/views/<view>/<id>`, waiting for `min_version` / `min_offset` if asked."""
        context, view, entity_id = (request.match_info[k] for k in ("context", "view", "entity_id"))
        query = request.query
        side = self.lookup.view(context, view)
        min_version = int_param(query, "min_version", None, low=0)
        min_offset = int_param(query, "min_offset", None, low=0)
        timeout = timeout_param(query)
        aggregate_id = query.get("aggregate_id") or entity_id
        repartitioned = side.views[view].repartitioned
        if min_offset is not None and repartitioned:
            raise BadParameter(f"min_offset: {view} is re-keyed; use min_version and aggregate_id")
        if repartitioned and min_version is not None and "aggregate_id" not in query:
            raise BadParameter(f"aggregate_id is required with min_version on {view}")
        version = side.active(view)
        partition = partition_for(entity_id.encode(), self.settings.partitions)
        waits = min_version is not None or min_offset is not None

        async def local() -> web.Response | None:
            documents = side.documents(view, version)
            if documents is not None:
                await documents.arrival(partition, timeout)
            if documents is None or not documents.holds(partition):
                return None
            if not waits:
                return self._answer(
                    view, version, entity_id, await self._read(documents, partition, entity_id)
                )
            if self._waiting >= self.settings.read_max_waiters:
                metrics.READ_WAITERS_REFUSED.inc()
                raise TooManyWaiters(f"{self._waiting} requests are waiting on this worker already; retry")
            self._waiting += 1
            metrics.READ_WAITERS.set(self._waiting)
            try:
                target = Target(aggregate_id, min_version, min_offset)
                return await self._wait(documents, partition, entity_id, target, timeout, view, version)
            finally:
                self._waiting -= 1
                metrics.READ_WAITERS.set(self._waiting)

        group = side.runtime.groups.view(view, version)
        return await self.router.routed(request, group, partition, local)

    async def page(self, request: web.Request) -> web.Response:
        """`GET /<ctx>/views/<view>?<field>=<value>&limit=&after=`: documents in id order."""
        context, view = request.match_info["context"], request.match_info["view"]
        query = request.query
        side = self.lookup.view(context, view)
        limit = int_param(query, "limit", 50, low=1, high=1000)
        after = query.get("after", "")
        fields = side.views[view].list_fields
        filters = {}
        for name, value in query.items():
            if name in RESERVED:
                continue
            if name not in fields:
                allowed = ", ".join(fields) or "none"
                raise BadParameter(f"{name} is not a filter of {view} (filters: {allowed})")
            filters[name] = value
        version = side.active(view)
        documents = side.documents(view, version)
        loop = asyncio.get_running_loop()
        page_bytes = self.settings.read_page_bytes

        async def scan(partitions: list[int] | None) -> LocalPage:
            if documents is None:
                return LocalPage(missing=list(partitions or ()))
            return await loop.run_in_executor(
                None,
                lambda: local_page(
                    documents, view, after, limit, filters, partitions=partitions, max_bytes=page_bytes
                ),
            )

        if query.get("local"):
            asked = partitions_param(query)
            mine = await scan(asked)
            return ok(
                {
                    "items": mine.items,
                    "partitions": mine.partitions,
                    "horizon": mine.horizon,
                    "missing": mine.missing,
                    "sizes": mine.sizes,
                }
            )
        group = side.runtime.groups.view(view, version)
        owners = await self.router.owners(group)
        if len(owners) < self.settings.partitions:
            owners = await self.router.owners(group, refresh=True)
        if len(owners) < self.settings.partitions:
            unowned = sorted(set(range(self.settings.partitions)) - set(owners))
            raise Rebalancing(f"no worker owns partition(s) {unowned} of {view} yet; retry")
        by_worker: dict[str, list[int]] = {}
        for partition, url in sorted(owners.items()):
            by_worker.setdefault(url, []).append(partition)
        pages: list[LocalPage] = []
        for url, partitions in sorted(by_worker.items()):
            if url == self.lookup.url:
                pages.append(await scan(partitions))
                continue
            remote = {
                **query, "local": "1", "routed": "1", "limit": str(limit),
                "partitions": ",".join(map(str, partitions)),
            }  # fmt: skip
            forwarded = await self.router.get(url, request.rel_url.raw_path, remote)
            body = forwarded.body
            if forwarded.status != 200:
                raise WorkerUnavailable(f"worker {url} answered {forwarded.status} for its part of the list")
            pages.append(
                LocalPage(
                    body["items"],
                    body["horizon"],
                    body["partitions"],
                    body.get("missing", []),
                    body.get("sizes", []),
                )
            )
        missing = sorted(p for page in pages for p in page.missing)
        if missing:  # moved between workers since the group was described: a page would have a hole
            self.router.forget(group)
            raise Rebalancing(f"partition(s) {missing} of {view} are moving between workers; retry")
        items, cursor = merge(pages, limit, page_bytes)
        sizes = {
            item["entity_id"]: size
            for page in pages
            for item, size in zip(page.items, page.sizes, strict=False)
        }
        metrics.PAGE_BYTES.observe(sum(sizes.get(item["entity_id"], 0) for item in items))
        return ok({"items": items, "next": cursor, "complete": True, "version_served": version})

    async def _read(self, documents: ViewDocuments, partition: int, entity_id: str) -> Document | None:
        """The stored document, read and decoded off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, documents.get, partition, entity_id)

    async def _wait(
        self,
        documents: ViewDocuments,
        partition: int,
        entity_id: str,
        target: Target,
        timeout: float,
        view: str,
        version: int,
    ) -> web.Response | None:
        """Answer once the document reaches `target`: woken by the commits of the partition's
        batches, it decodes the document once and then reads only what changed (from the
        read side's cache when it can). None: the partition left this worker meanwhile."""
        deadline = time.monotonic() + timeout
        signal = documents.signal(partition)  # taken before the check: no commit is missed
        doc = await self._read(documents, partition, entity_id)
        while True:
            position = documents.position(partition)
            if position is None:
                return None
            if target.reached(doc, position):
                return self._answer(view, version, entity_id, doc)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not await signal.wait(remaining):
                raise NotReached(
                    not_reached(
                        view, target.aggregate_id, target.min_version, target.min_offset, doc, timeout
                    )
                )
            changed = documents.changed(signal, entity_id)
            signal = documents.signal(partition)
            if changed:
                doc = documents.cached(partition, entity_id) or await self._read(
                    documents, partition, entity_id
                )

    @staticmethod
    def _answer(view: str, version: int, entity_id: str, doc: Document | None) -> web.Response:
        if doc is None or doc.state is None:
            raise NotFound(f"no {view} document with id {entity_id!r}")
        return ok({**document_json(view, doc), "version_served": version})


def partitions_param(query: Mapping[str, str]) -> list[int] | None:
    """The partitions a worker's part of a list names (None: every one it holds)."""
    if "partitions" not in query:
        return None
    try:
        return [int(p) for p in query["partitions"].split(",") if p]
    except ValueError:
        raise BadParameter("partitions must be partition numbers") from None


def not_reached(
    view: str, aggregate_id: str, min_version: int | None, min_offset: int | None, doc: Any, timeout: float
) -> str:
    """What a 409 `not_reached` says: only the positions that were asked for."""
    wanted = []
    if min_version is not None:
        at = doc.seen(aggregate_id) if doc is not None else 0
        wanted.append(f"version {min_version} of {aggregate_id} (it is at version {at})")
    if min_offset is not None:
        wanted.append(f"input offset {min_offset}")
    return f"{view} has not reached {' and '.join(wanted)} within {timeout}s"
