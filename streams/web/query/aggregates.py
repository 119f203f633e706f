"""`GET /<ctx>/aggregates/<id>` (state now, `?at_version=` or `?as_of=`: time travel) and
`GET /<ctx>/aggregates/<id>/events` (the aggregate's history, paged)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from streams.config import Settings
from streams.kafka.readers import read_offsets
from streams.read.fold import logged_events
from streams.read.history import state_at
from streams.read.readside import ContextReadSide, WorkerReadSide
from streams.web.query.params import BadParameter, int_param, timestamp_param
from streams.web.query.routing import Router
from streams.web.responses import Starting, ok, problem
from streams.wire.headers import as_dict
from streams.wire.jsonable import to_json
from streams.wire.topics import partition_for


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

    def _entries(
        self, side: ContextReadSide, partition: int, context: str, aggregate_id: str
    ) -> list[tuple[int, int, int]] | web.Response | None:
        """The aggregate's (version, offset, occurred_at) index entries: None when this worker
        does not own `partition`, a 404 when it knows no such aggregate."""
        if side.history.store(partition) is None:
            return None
        entries = side.history.lookup(partition, aggregate_id)
        return entries or problem(404, f"no aggregate {aggregate_id!r} in {context}")

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

        async def local() -> web.Response | None:
            entries = self._entries(side, partition, context, aggregate_id)
            if not isinstance(entries, list):  # not owned here (None) or a 404
                return entries
            version = entries[-1][0]
            if at_version is not None:
                if at_version > version:
                    return problem(404, f"{aggregate_id} has {version} versions, not {at_version}")
                version = at_version
            if as_of is not None:
                earlier = [v for v, _, occurred in entries if occurred <= as_of]
                if not earlier:
                    return problem(404, f"{aggregate_id} did not exist at {request.query['as_of']}")
                version = earlier[-1]
            offsets = {v: offset for v, offset, _ in entries}
            snapshot = side.history.snapshot_at_or_before(partition, aggregate_id, version)
            point = await asyncio.get_running_loop().run_in_executor(
                None,
                state_at,
                self.settings,
                side.runtime,
                aggregate_id,
                partition,
                offsets,
                version,
                snapshot,
            )
            return ok(
                {
                    "aggregate_id": aggregate_id,
                    "version": point.version,
                    "latest_version": entries[-1][0],
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

        async def local() -> web.Response | None:
            entries = self._entries(side, partition, context, aggregate_id)
            if not isinstance(entries, list):  # not owned here (None) or a 404
                return entries
            page = [e for e in entries if e[0] >= from_version][:limit]
            events: list[dict[str, Any]] = []
            if page:
                records = await asyncio.get_running_loop().run_in_executor(
                    None,
                    read_offsets,
                    self.settings,
                    side.runtime.topics.events,
                    partition,
                    [e[1] for e in page],
                )
                for logged in logged_events(side.runtime, records, only=aggregate_id.encode()):
                    events.append(
                        {
                            "version": logged.version,
                            "type": type(logged.event).__name__,
                            "data": to_json(logged.event),
                            "offset": logged.record.offset(),
                            "partition": partition,
                            "headers": as_dict(logged.record.headers()),
                        }
                    )
            last = entries[-1][0]
            following = page[-1][0] + 1 if page and page[-1][0] < last else None
            return ok(
                {"aggregate_id": aggregate_id, "latest_version": last, "events": events, "next": following}
            )

        return await self.router.routed(request, side.runtime.groups.history, partition, local)
