"""The query API on the worker's web server: documents, lists, aggregate history, time travel.

Each request for a key goes to the worker owning the key's partition in the stage's consumer
group (read from the group's description, whose members carry their URL as client id); a
list asks every owner and merges. `min_version` / `min_offset` make a read wait until the view
has caught up (read-your-writes), up to `timeout`, then answer 504.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

import aiohttp
import faust
from confluent_kafka.admin import AdminClient
from faust.web import Request, Response, View
from mode import Service

from streams.config import Settings
from streams.core.views import Document
from streams.kafka.runtime import ContextRuntime
from streams.read.history import decode_events, read_range, state_at
from streams.read.projector import DOC_PREFIX, decode_document, partition_for
from streams.read.readside import ContextReadSide, history_group, status, view_group
from streams.wire.headers import as_dict
from streams.wire.jsonable import to_json

log = logging.getLogger(__name__)
MAX_TIMEOUT_S = 60.0


class BadParameter(Exception):
    """A malformed query parameter; the message names it."""


def int_param(request: Request, name: str, default: int | None, low: int = 0, high: int | None = None) -> Any:
    """An integer query parameter within bounds, or BadParameter naming it."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(f"{name} must be an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        raise BadParameter(f"{name} must be between {low} and {high if high is not None else 'inf'}")
    return value


def timeout_param(request: Request) -> float:
    """`timeout` in seconds (default 5, at most 60)."""
    raw = request.query.get("timeout", "5")
    try:
        value = float(raw)
    except ValueError:
        raise BadParameter(f"timeout must be a number of seconds, got {raw!r}") from None
    if not 0 <= value <= MAX_TIMEOUT_S:
        raise BadParameter(f"timeout must be between 0 and {MAX_TIMEOUT_S}")
    return value


def timestamp_param(request: Request, name: str) -> int | None:
    """An ISO-8601 timestamp (or epoch milliseconds) as epoch milliseconds."""
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw.isdigit():
        return int(raw)
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadParameter(
            f"{name} must be an ISO-8601 timestamp or epoch milliseconds, got {raw!r}"
        ) from None
    if parsed.tzinfo is None:
        raise BadParameter(f"{name} must carry a time zone (e.g. ...Z)")
    return int(parsed.timestamp() * 1000)


def document_json(view: str, doc: Document) -> dict[str, Any]:
    """A document as the API returns it."""
    return {
        "entity_id": doc.entity_id,
        "view": view,
        "state": doc.state,
        "last_event_version": doc.last_event_version,
        "last_updated": doc.last_updated,
    }


class Router:
    """Which worker owns a partition of a consumer group (cached for a few seconds)."""

    def __init__(self, settings: Settings) -> None:
        self._admin = AdminClient({"bootstrap.servers": settings.bootstrap})
        self._cache: dict[str, tuple[float, dict[int, str]]] = {}

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


class ReadSides:
    """The worker's ContextReadSide per context, started with the app (a Faust service)."""

    def __init__(self, settings: Settings, worker_id: str) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.url = f"http://127.0.0.1:{settings.web_port}"
        self.sides: dict[str, ContextReadSide] = {}

    def start(self) -> None:
        for name in self.settings.contexts:
            runtime = ContextRuntime.connect(self.settings, name, retry_for_s=300)
            side = ContextReadSide(self.settings, runtime, worker_id=self.worker_id, url=self.url)
            side.start()
            self.sides[name] = side

    def stop(self) -> None:
        for side in self.sides.values():
            side.stop()


def register_read_side(app: faust.App, settings: Settings, worker_id: str) -> None:
    """Start the read side with `app` and attach the query endpoints."""
    sides = ReadSides(settings, worker_id)
    router = Router(settings)
    if settings.read_side:

        @app.service
        class ReadSideService(Service):
            async def on_start(self) -> None:
                await asyncio.get_running_loop().run_in_executor(None, sides.start)

            async def on_stop(self) -> None:
                await asyncio.get_running_loop().run_in_executor(None, sides.stop)

    session: dict[str, aiohttp.ClientSession] = {}

    async def forward(request: Request, url: str) -> tuple[int, Any]:
        if "s" not in session:
            session["s"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=MAX_TIMEOUT_S + 10))
        query = dict(request.query)
        query["routed"] = "1"
        async with session["s"].get(f"{url}{request.url.path}", params=query) as response:
            return response.status, await response.json()

    class Base(View):
        def problem(self, status: int, detail: str) -> Response:
            return self.json({"error": detail}, status=status)

        def side(self, context: str) -> ContextReadSide:
            side = sides.sides.get(context)
            if side is None:
                raise LookupError(f"unknown context {context!r}")
            return side

        def history_entries(
            self, side: ContextReadSide, partition: int, context: str, aggregate_id: str
        ) -> list[Any] | Response | None:
            """The aggregate's (version, offset, occurred_at) index entries: None when this worker
            does not own `partition`, a 404 when it knows no such aggregate."""
            if side.history.store(partition) is None:
                return None
            entries = side.history.lookup(partition, aggregate_id)
            return entries or self.problem(404, f"no aggregate {aggregate_id!r} in {context}")

        async def routed(self, request: Request, group: str, partition: int, local: Any) -> Response:
            """Answer from this worker when it owns `partition`, else ask the owner."""
            if await local() is not None:
                return await local()
            if request.query.get("routed"):
                return self.problem(503, f"partition {partition} is not owned here (rebalancing); retry")
            owners = await router.owners(group)
            url = owners.get(partition)
            if url is None or url == sides.url:
                owners = await router.owners(group, refresh=True)
                url = owners.get(partition)
            if url is None or url == sides.url:
                return self.problem(503, f"no worker owns partition {partition} yet; retry")
            status_code, body = await forward(request, url)
            return self.json(body, status=status_code)

    @app.page("/{context}/views")
    class Views(Base):
        async def get(self, request: Request, context: str) -> Response:
            try:
                side = self.side(context)
            except LookupError as exc:
                return self.problem(404, str(exc))
            return self.json({"context": context, "worker": sides.url, "views": status(side)})

    @app.page("/{context}/views/{view}/{entity_id}")
    class Document_(Base):
        async def get(self, request: Request, context: str, view: str, entity_id: str) -> Response:
            try:
                side = self.side(context)
                if view not in side.views:
                    return self.problem(404, f"unknown view {view!r}; known: {', '.join(side.views)}")
                min_version = int_param(request, "min_version", None, low=0)
                min_offset = int_param(request, "min_offset", None, low=0)
                timeout = timeout_param(request)
                aggregate_id = request.query.get("aggregate_id") or entity_id
                if min_offset is not None and side.views[view].repartitioned:
                    raise BadParameter(f"min_offset: {view} is re-keyed; use min_version and aggregate_id")
                if (
                    side.views[view].repartitioned
                    and min_version is not None
                    and "aggregate_id" not in request.query
                ):
                    raise BadParameter(f"aggregate_id is required with min_version on {view}")
            except BadParameter as exc:
                return self.problem(400, str(exc))
            except LookupError as exc:
                return self.problem(404, str(exc))
            version = side.active(view)
            partition = partition_for(entity_id.encode(), settings.partitions)

            async def local() -> Response | None:
                projector = side.projector(view, version)
                if projector is None or projector.store(partition) is None:
                    return None
                deadline = time.monotonic() + timeout
                while True:
                    store = projector.store(partition)
                    if store is None:
                        return None
                    raw = store.get(DOC_PREFIX + entity_id.encode())
                    doc = None if raw is None else decode_document(entity_id, raw)
                    reached = True
                    if min_version is not None:
                        reached = doc is not None and doc.seen(aggregate_id) >= min_version
                    if min_offset is not None:
                        reached = reached and store.position(projector.inputs[0]) > min_offset
                    if reached:
                        break
                    if time.monotonic() >= deadline:
                        at = doc.seen(aggregate_id) if doc is not None else 0
                        return self.problem(
                            504,
                            f"{view} has not reached version {min_version} of {aggregate_id} "
                            f"(or offset {min_offset}) within {timeout}s; it is at version {at}",
                        )
                    await asyncio.sleep(0.02)
                if doc is None or doc.state is None:
                    return self.problem(404, f"no {view} document with id {entity_id!r}")
                return self.json({**document_json(view, doc), "version_served": version})

            group = view_group(settings, side.runtime, view, version)
            return await self.routed(request, group, partition, _once(local))

    @app.page("/{context}/views/{view}")
    class DocumentList(Base):
        async def get(self, request: Request, context: str, view: str) -> Response:
            try:
                side = self.side(context)
                if view not in side.views:
                    return self.problem(404, f"unknown view {view!r}; known: {', '.join(side.views)}")
                limit = int_param(request, "limit", 50, low=1, high=1000)
                after = request.query.get("after", "")
                fields = side.views[view].list_fields
                filters = {}
                for name, value in request.query.items():
                    if name in ("limit", "after", "routed", "local"):
                        continue
                    if name not in fields:
                        allowed = ", ".join(fields) or "none"
                        raise BadParameter(f"{name} is not a filter of {view} (filters: {allowed})")
                    filters[name] = value
            except BadParameter as exc:
                return self.problem(400, str(exc))
            except LookupError as exc:
                return self.problem(404, str(exc))
            version = side.active(view)
            projector = side.projector(view, version)
            if request.query.get("local"):
                local_items = _local_page(projector, view, after, limit, filters) if projector else []
                owned = sorted(projector.stores) if projector else []
                return self.json({"items": local_items, "partitions": owned})
            group = view_group(settings, side.runtime, view, version)
            owners = await router.owners(group)
            if len(owners) < settings.partitions:
                owners = await router.owners(group, refresh=True)
            items = []
            covered: set[int] = set()
            for url in sorted(set(owners.values())):
                if url == sides.url and projector is not None:
                    items += _local_page(projector, view, after, limit, filters)
                    covered.update(projector.stores)
                    continue
                query = {**request.query, "local": "1", "routed": "1", "limit": str(limit)}
                if "s" not in session:
                    session["s"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
                async with session["s"].get(f"{url}{request.url.path}", params=query) as response:
                    body = await response.json()
                items += body["items"]
                covered.update(body["partitions"])
            items.sort(key=lambda item: item["entity_id"])
            page = items[:limit]
            return self.json(
                {
                    "items": page,
                    "next": page[-1]["entity_id"] if len(items) > limit else None,
                    "complete": len(covered) >= settings.partitions,
                    "version_served": version,
                }
            )

    @app.page("/{context}/aggregates/{aggregate_id}")
    class Aggregate(Base):
        async def get(self, request: Request, context: str, aggregate_id: str) -> Response:
            try:
                side = self.side(context)
                at_version = int_param(request, "at_version", None, low=1)
                as_of = timestamp_param(request, "as_of")
                if at_version is not None and as_of is not None:
                    raise BadParameter("at_version and as_of: give one of them")
            except BadParameter as exc:
                return self.problem(400, str(exc))
            except LookupError as exc:
                return self.problem(404, str(exc))
            partition = partition_for(aggregate_id.encode(), settings.partitions)

            async def local() -> Response | None:
                history = side.history
                entries = self.history_entries(side, partition, context, aggregate_id)
                if not isinstance(entries, list):  # not owned here (None) or a 404
                    return entries
                version = entries[-1][0]
                if at_version is not None:
                    if at_version > version:
                        return self.problem(404, f"{aggregate_id} has {version} versions, not {at_version}")
                    version = at_version
                if as_of is not None:
                    earlier = [v for v, _, occurred in entries if occurred <= as_of]
                    if not earlier:
                        return self.problem(404, f"{aggregate_id} did not exist at {request.query['as_of']}")
                    version = earlier[-1]
                offsets = {v: offset for v, offset, _ in entries}
                snapshot = history.snapshot_at_or_before(partition, aggregate_id, version)
                loop = asyncio.get_running_loop()
                point = await loop.run_in_executor(
                    None,
                    state_at,
                    settings,
                    side.runtime,
                    aggregate_id,
                    partition,
                    offsets,
                    version,
                    snapshot,
                )
                return self.json(
                    {
                        "aggregate_id": aggregate_id,
                        "version": point.version,
                        "latest_version": entries[-1][0],
                        "state": to_json(point.state),
                        "from_snapshot": point.from_snapshot,
                        "events_read": point.events_read,
                    }
                )

            return await self.routed(request, history_group(settings, side.runtime), partition, _once(local))

    @app.page("/{context}/aggregates/{aggregate_id}/events")
    class Events(Base):
        async def get(self, request: Request, context: str, aggregate_id: str) -> Response:
            try:
                side = self.side(context)
                from_version = int_param(request, "from_version", 1, low=1)
                limit = int_param(request, "limit", 100, low=1, high=1000)
            except BadParameter as exc:
                return self.problem(400, str(exc))
            except LookupError as exc:
                return self.problem(404, str(exc))
            partition = partition_for(aggregate_id.encode(), settings.partitions)

            async def local() -> Response | None:
                entries = self.history_entries(side, partition, context, aggregate_id)
                if not isinstance(entries, list):  # not owned here (None) or a 404
                    return entries
                page = [e for e in entries if e[0] >= from_version][:limit]
                events: list[dict[str, Any]] = []
                if page:
                    loop = asyncio.get_running_loop()
                    records = await loop.run_in_executor(
                        None,
                        read_range,
                        settings,
                        side.runtime.topics.events,
                        partition,
                        page[0][1],
                        page[-1][1],
                    )
                    for version, event, msg in decode_events(side.runtime, records, aggregate_id.encode()):
                        meta = as_dict(msg.headers())
                        events.append(
                            {
                                "version": version,
                                "type": type(event).__name__,
                                "data": to_json(event),
                                "offset": msg.offset(),
                                "partition": partition,
                                "headers": meta,
                            }
                        )
                last = entries[-1][0]
                following = page[-1][0] + 1 if page and page[-1][0] < last else None
                return self.json(
                    {
                        "aggregate_id": aggregate_id,
                        "latest_version": last,
                        "events": events,
                        "next": following,
                    }
                )

            return await self.routed(request, history_group(settings, side.runtime), partition, _once(local))


def _once(fn: Any) -> Any:
    """Call an async function once and replay its result (route() asks twice)."""
    done: dict[str, Any] = {}

    async def wrapper() -> Any:
        if "r" not in done:
            done["r"] = await fn()
        return done["r"]

    return wrapper


def _local_page(
    projector: Any, view: str, after: str, limit: int, filters: dict[str, str]
) -> list[dict[str, Any]]:
    """Up to `limit` documents per owned partition after `after` that match `filters`."""
    items: list[dict[str, Any]] = []
    start = DOC_PREFIX + after.encode() + b"\x00" if after else None
    for store in list(projector.stores.values()):
        found = 0
        for key, raw in store.scan(DOC_PREFIX, start):
            doc = decode_document(key[len(DOC_PREFIX) :].decode(), raw)
            if doc.state is None or any(str(doc.state.get(k)) != v for k, v in filters.items()):
                continue
            items.append(document_json(view, doc))
            found += 1
            if found >= limit:
                break
    return items
