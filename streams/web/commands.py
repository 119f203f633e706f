"""`POST /<ctx>/commands/<Type>`: the seed's Command API over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from streams.client import CommandClient
from streams.config import Settings
from streams.core.decider import BoundedContext
from streams.web.responses import ok, problem
from streams.wire.identifiers import InvalidIdentifier, check_identifier
from streams.wire.jsonable import InvalidMessage, message_from_json, to_json
from streams.wire.limits import FieldTooLong
from streams.wire.schemas import to_record

STATUS_BY_REASON = {"version_conflict": 409}


class CommandEndpoints:
    """Commands from JSON: validated, produced to `<ctx>.commands`, answered with the result."""

    def __init__(self, settings: Settings, contexts: Mapping[str, BoundedContext[Any]]) -> None:
        self.settings = settings
        self.contexts = contexts
        self._clients: dict[str, CommandClient] = {}
        self._lock = asyncio.Lock()

    def routes(self) -> list[web.AbstractRouteDef]:
        """This group's routes."""
        return [web.post("/{context}/commands/{command_type}", self.post)]

    async def client(self, context: str) -> CommandClient:
        """The context's client, created on first use (creation blocks: executor)."""
        async with self._lock:
            if context not in self._clients:
                loop = asyncio.get_running_loop()
                bounded_context = self.contexts[context]
                self._clients[context] = await loop.run_in_executor(
                    None, lambda: CommandClient(self.settings, bounded_context)
                )
            return self._clients[context]

    async def post(self, request: web.Request) -> web.Response:
        """Send one command; wait for its result unless `wait=false` (202 when none in time)."""
        context, command_type = request.match_info["context"], request.match_info["command_type"]
        if context not in self.settings.contexts or context not in self.contexts:
            return problem(404, f"unknown context {context!r}")
        if request.content_type != "application/json" and not request.content_type.endswith("+json"):
            # a web page can post text/plain to any site without asking; JSON needs CORS, which this
            # worker never grants: so a page the user visits cannot send commands in their name
            detail = f"commands are JSON: Content-Type application/json, not {request.content_type or 'none'}"
            return problem(415, detail, reason="unsupported_media_type")
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError as exc:
            return problem(400, f"body is not JSON: {exc}")
        if not isinstance(body, dict):
            return problem(400, "body must be a JSON object")
        client = await self.client(context)
        try:
            cls = client.command_type(command_type)
            aggregate_id = body.get("aggregate_id")
            if not isinstance(aggregate_id, str) or not aggregate_id:
                raise InvalidMessage("aggregate_id (non-empty string) is required")
            expected = body.get("expected_version")
            if expected is not None and not isinstance(expected, int):
                raise InvalidMessage("expected_version must be an integer")
            ids = {name: body.get(name) or "" for name in ("command_id", "correlation_id", "actor")}
            for name, value in ids.items():
                if not isinstance(value, str):
                    raise InvalidMessage(f"{name} must be a string")
                check_identifier(name, value, required=False)
            check_identifier("aggregate_id", aggregate_id)
            command = message_from_json(cls, body.get("data", {}))
            client.runtime.limits.check(command_type, to_record(command))
            client.runtime.codec.encode(command)  # field types checked before sending
        except (InvalidIdentifier, FieldTooLong) as exc:
            return problem(400, str(exc), reason=exc.reason, field=exc.field)
        except (InvalidMessage, ValueError, TypeError) as exc:
            return problem(400, str(exc))
        command_id, future = client.send(
            aggregate_id,
            command,
            command_id=ids["command_id"] or None,
            expected_version=expected,
            correlation_id=ids["correlation_id"],
            actor=ids["actor"],
        )
        if request.query.get("wait", "true").lower() in ("0", "false", "no"):
            return ok({"command_id": command_id, "status": "submitted"}, status=202)
        timeout = float(request.query.get("timeout", "10"))
        assert future is not None
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            detail = f"no result within {timeout}s; the command is still queued"
            return ok({"command_id": command_id, "status": "submitted", "detail": detail}, status=202)
        status = 200 if result.accepted else STATUS_BY_REASON.get(result.reason, 422)
        return ok(to_json(result), status=status)
