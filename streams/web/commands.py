"""`POST /<ctx>/commands/<Type>`: the seed's Command API over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from streams.client import CommandClient
from streams.config import Settings
from streams.kafka.runtime import ContextRuntime, Runtimes
from streams.web.envelope import data_problem, parse_envelope
from streams.web.query.params import flag, seconds
from streams.web.responses import NotFound, ok, problem
from streams.wire.jsonable import to_json
from streams.wire.schemas import from_record
from streams.wire.validation import JsonInvalid, compile_validator

STATUS_BY_REASON = {"version_conflict": 409}


class CommandEndpoints:
    """Commands from JSON: validated, produced to `<ctx>.commands`, answered with the result.

    Each context's client and validators use the runtime (codec, schema catalog) the worker's
    stages share: the first command of a context opens no second one."""

    def __init__(self, settings: Settings, runtimes: Runtimes) -> None:
        self.settings = settings
        self.runtimes = runtimes
        self.contexts = runtimes.contexts
        self._clients: dict[str, CommandClient] = {}
        self._validators: dict[tuple[str, str], Callable[[Any], None]] = {}
        self._lock = asyncio.Lock()

    def routes(self) -> list[web.AbstractRouteDef]:
        """This group's routes."""
        return [web.post("/{context}/commands/{command_type}", self.post)]

    async def runtime(self, context: str) -> ContextRuntime:
        """The context's runtime, as the worker built it (connected on first use: executor)."""
        connected = self.runtimes.connected(context)
        if connected is not None:
            return connected
        return await asyncio.get_running_loop().run_in_executor(None, self.runtimes.get, context)

    async def client(self, context: str) -> CommandClient:
        """The context's client, created on first use (creation blocks: executor)."""
        async with self._lock:
            if context not in self._clients:
                runtime = await self.runtime(context)
                loop = asyncio.get_running_loop()
                self._clients[context] = await loop.run_in_executor(
                    None, lambda: CommandClient(self.settings, runtime.context, runtime=runtime)
                )
            return self._clients[context]

    def validator(self, runtime: ContextRuntime, command_type: str) -> Callable[[Any], None]:
        """The check of a command type's `data` (compiled once, from the runtime's catalog)."""
        key = (runtime.context.name, command_type)
        if key not in self._validators:
            schema = runtime.codec.catalog.latest(command_type).text
            self._validators[key] = compile_validator(json.loads(schema))
        return self._validators[key]

    async def post(self, request: web.Request) -> web.Response:
        """Send one command; wait for its result unless `wait=false` (202 when none in time)."""
        context, command_type = request.match_info["context"], request.match_info["command_type"]
        bounded_context = self.contexts.get(context)
        if context not in self.settings.contexts or bounded_context is None:
            raise NotFound(f"unknown context {context!r}")
        cls = bounded_context.command_names.get(command_type)
        if cls is None:
            known = ", ".join(bounded_context.command_names)
            detail = f"unknown command type {command_type!r}; known: {known}"
            return problem(400, detail, reason="unknown_command_type")
        if request.content_type != "application/json" and not request.content_type.endswith("+json"):
            # a web page can post text/plain to any site without asking; JSON needs CORS, which this
            # worker never grants: so a page the user visits cannot send commands in their name
            detail = f"commands are JSON: Content-Type application/json, not {request.content_type or 'none'}"
            return problem(415, detail, reason="unsupported_media_type")
        wait = flag(request.query, "wait", True)
        timeout = seconds(request.query, "timeout", 10.0)
        body = await read_body(request, self.settings.max_body_bytes)
        if body is None:
            detail = f"the body is over {self.settings.max_body_bytes} bytes (STREAMS_MAX_BODY_BYTES)"
            return problem(413, detail, reason="body_too_large")
        envelope = parse_envelope(body)
        try:
            self.validator(await self.runtime(context), command_type)(envelope.data)
        except JsonInvalid as exc:
            raise data_problem(exc) from None
        command = from_record(cls, envelope.data)
        client = await self.client(context)  # TopicMismatch: the operator's to fix, nothing is sent
        command_id, future = client.send(
            envelope.aggregate_id,
            command,
            command_id=envelope.command_id or None,
            expected_version=envelope.expected_version,
            correlation_id=envelope.correlation_id,
            actor=envelope.actor,
        )
        if not wait:
            return ok({"command_id": command_id, "status": "submitted"}, status=202)
        assert future is not None
        try:
            result = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
        except TimeoutError:
            client.forget(command_id, future)  # a result arriving later has no one to wake
            detail = f"no result within {timeout}s; the command is still queued"
            return ok({"command_id": command_id, "status": "submitted", "detail": detail}, status=202)
        status = 200 if result.accepted else STATUS_BY_REASON.get(result.reason, 422)
        return ok(to_json(result), status=status)


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The request body, or None when it is over `limit` bytes (read no further than that)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    return None
