"""`GET /<ctx>/aggregates/<id>` (state now, `?at_version=` or `?as_of=`: time travel) and
`GET /<ctx>/aggregates/<id>/events` (the aggregate's history, paged)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from streams.config import Settings
from streams.read.history_index import NotOwned
from streams.read.readside import ContextReadSide
from streams.web.query.lookup import ReadLookup
from streams.web.query.params import BadParameter, int_param, timestamp_param
from streams.web.query.routing import Router
from streams.web.responses import ok
from streams.wire.headers import as_dict
from streams.wire.jsonable import to_json
from streams.wire.topics import partition_for

T = TypeVar("T")


class AggregateEndpoints:
    """An aggregate's state at any point of its history, and its events."""

    def __init__(self, settings: Settings, lookup: ReadLookup, router: Router) -> None:
        self.settings = settings
        self.lookup = lookup
        self.router = router

    def routes(self) -> list[web.AbstractRouteDef]:
        """This group's routes."""
        return [
            web.get("/{context}/aggregates/{aggregate_id}", self.state),
            web.get("/{context}/aggregates/{aggregate_id}/events", self.events),
        ]

    @staticmethod
    async def _off_loop(side: ContextReadSide, partition: int, call: Callable[[], T]) -> T | None:
        """Run a history read in an executor: None when `partition` is not held here (the
        router asks its owner); `NotInHistory` (a 404) when the history has no such aggregate,
        version or time."""
        if side.history.store(partition) is None:
            return None
        try:
            return await asyncio.get_running_loop().run_in_executor(side.history_reader.executor, call)
        except NotOwned:
            return None

    async def state(self, request: web.Request) -> web.Response:
        """The aggregate's state, now or at a version or time."""
        context, aggregate_id = request.match_info["context"], request.match_info["aggregate_id"]
        side = self.lookup.side(context)
        at_version = int_param(request.query, "at_version", None, low=1)
        as_of = timestamp_param(request.query, "as_of")
        if at_version is not None and as_of is not None:
            raise BadParameter("at_version and as_of: give one of them")
        partition = partition_for(aggregate_id.encode(), self.settings.partitions)

        reader = side.history_reader

        async def local() -> web.Response | None:
            point = await self._off_loop(
                side, partition, lambda: reader.state(partition, aggregate_id, at_version, as_of)
            )
            if point is None:  # not owned here
                return None
            return ok(
                {
                    "aggregate_id": aggregate_id,
                    "version": point.version,
                    "latest_version": point.latest_version,
                    "state": to_json(point.state),
                    "from_snapshot": point.from_snapshot,
                    "events_read": point.events_read,
                }
            )

        return await self.router.routed(request, side.runtime.groups.history, partition, local)

    async def events(self, request: web.Request) -> web.Response:
        """A page of the aggregate's events, from `from_version`."""
        context, aggregate_id = request.match_info["context"], request.match_info["aggregate_id"]
        side = self.lookup.side(context)
        from_version = int_param(request.query, "from_version", 1, low=1)
        limit = int_param(request.query, "limit", 100, low=1, high=1000)
        partition = partition_for(aggregate_id.encode(), self.settings.partitions)

        reader = side.history_reader

        def read() -> dict[str, Any]:  # in the history executor, JSON forms included
            page = reader.events(partition, aggregate_id, from_version, limit)
            events = [
                {
                    "version": logged.version,
                    "type": type(logged.event).__name__,
                    "data": to_json(logged.event),
                    "offset": logged.record.offset(),
                    "partition": partition,
                    "headers": as_dict(logged.record.headers()),
                }
                for logged in page.records
            ]
            return {
                "aggregate_id": aggregate_id,
                "latest_version": page.latest_version,
                "events": events,
                "next": page.next,
            }

        async def local() -> web.Response | None:
            body = await self._off_loop(side, partition, read)
            return None if body is None else ok(body)  # None: not owned here

        return await self.router.routed(request, side.runtime.groups.history, partition, local)
