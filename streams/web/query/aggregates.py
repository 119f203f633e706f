"""`GET /<ctx>/aggregates/<id>` (state now, `?at_version=` or `?as_of=`: time travel) and
`GET /<ctx>/aggregates/<id>/events` (the aggregate's history, paged)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from streams.config import Settings
from streams.read.history import NotInHistory, PointInTime
from streams.read.history_index import NotOwned
from streams.read.readside import ContextReadSide, WorkerReadSide
from streams.web.query.params import BadParameter, int_param, timestamp_param
from streams.web.query.routing import Router
from streams.web.responses import Starting, ok, problem
from streams.wire.headers import as_dict
from streams.wire.jsonable import to_json
from streams.wire.topics import partition_for

T = TypeVar("T")


class AggregateEndpoints:
    """An aggregate's state at any point of its history, and its events."""

    def __init__(self, settings: Settings, read_side: WorkerReadSide, router: Router) -> None:
        self.settings = settings
        self.read_side = read_side
        self.router = router

    def routes(self) -> list[web.AbstractRouteDef]:
        """This group's routes."""
        return [
            web.get("/{context}/aggregates/{aggregate_id}", self.state),
            web.get("/{context}/aggregates/{aggregate_id}/events", self.events),
        ]

    def _side(self, context: str) -> ContextReadSide:
        side = self.read_side.sides.get(context)
        if side is None:
            if context in self.settings.contexts and self.settings.read_side:
                raise Starting(f"the read side of {context} is starting; retry in a moment")
            raise LookupError(f"unknown context {context!r}")
        return side

    @staticmethod
    async def _off_loop(
        side: ContextReadSide, partition: int, call: Callable[[], T]
    ) -> T | web.Response | None:
        """Run a history read in an executor: None when `partition` is not held here (the
        router asks its owner), a 404 when the history has no such aggregate, version or time."""
        if side.history.store(partition) is None:
            return None
        try:
            return await asyncio.get_running_loop().run_in_executor(side.history_reader.executor, call)
        except NotOwned:
            return None
        except NotInHistory as exc:
            return problem(404, str(exc))

    async def state(self, request: web.Request) -> web.Response:
        """The aggregate's state, now or at a version or time."""
        context, aggregate_id = request.match_info["context"], request.match_info["aggregate_id"]
        try:
            side = self._side(context)
            at_version = int_param(request.query, "at_version", None, low=1)
            as_of = timestamp_param(request.query, "as_of")
            if at_version is not None and as_of is not None:
                raise BadParameter("at_version and as_of: give one of them")
        except BadParameter as exc:
            return problem(400, str(exc), reason="invalid_parameter", field=exc.field)
        except Starting as exc:
            return problem(503, str(exc), reason="starting", headers={"Retry-After": "1"})
        except LookupError as exc:
            return problem(404, str(exc))
        partition = partition_for(aggregate_id.encode(), self.settings.partitions)

        reader = side.history_reader

        async def local() -> web.Response | None:
            point = await self._off_loop(
                side, partition, lambda: reader.state(partition, aggregate_id, at_version, as_of)
            )
            if not isinstance(point, PointInTime):  # not owned here (None) or a 404
                return point
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
        try:
            side = self._side(context)
            from_version = int_param(request.query, "from_version", 1, low=1)
            limit = int_param(request.query, "limit", 100, low=1, high=1000)
        except BadParameter as exc:
            return problem(400, str(exc), reason="invalid_parameter", field=exc.field)
        except Starting as exc:
            return problem(503, str(exc), reason="starting", headers={"Retry-After": "1"})
        except LookupError as exc:
            return problem(404, str(exc))
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
            return ok(body) if isinstance(body, dict) else body  # not owned here (None) or a 404

        return await self.router.routed(request, side.runtime.groups.history, partition, local)
