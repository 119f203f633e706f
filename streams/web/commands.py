"""HTTP on the worker's web server: the seed's Command API, health and Prometheus metrics."""

from __future__ import annotations

import asyncio
import json

import faust
from faust.web import Request, Response, View

from streams import metrics
from streams.client import CommandClient
from streams.config import Settings
from streams.web import auth
from streams.wire.jsonable import InvalidMessage, message_from_json, to_json

STATUS_BY_REASON = {"version_conflict": 409}


class Clients:
    """One CommandClient per context, created on first use (creation blocks: executor)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: dict[str, CommandClient] = {}
        self._lock = asyncio.Lock()

    async def get(self, context: str) -> CommandClient:
        async with self._lock:
            if context not in self._clients:
                loop = asyncio.get_running_loop()
                self._clients[context] = await loop.run_in_executor(
                    None, lambda: CommandClient(self.settings, context)
                )
            return self._clients[context]


def register_views(app: faust.App, settings: Settings) -> None:
    """Attach the HTTP endpoints to `app`."""
    clients = Clients(settings)
    auth.install(app, settings)  # 401 without the bearer token, when one is configured

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            body, content_type = metrics.render()
            return self.bytes(body, content_type=content_type.split(";")[0])

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok", "contexts": list(settings.contexts)})

    @app.page("/{context}/commands/{command_type}")
    class Commands(View):
        async def post(self, request: Request, context: str, command_type: str) -> Response:
            if context not in settings.contexts:
                return self.problem(404, f"unknown context {context!r}")
            try:
                body = json.loads(await request.read() or b"{}")
            except ValueError as exc:
                return self.problem(400, f"body is not JSON: {exc}")
            if not isinstance(body, dict):
                return self.problem(400, "body must be a JSON object")
            client = await clients.get(context)
            try:
                cls = client.command_type(command_type)
                aggregate_id = body.get("aggregate_id")
                if not isinstance(aggregate_id, str) or not aggregate_id:
                    raise InvalidMessage("aggregate_id (non-empty string) is required")
                expected = body.get("expected_version")
                if expected is not None and not isinstance(expected, int):
                    raise InvalidMessage("expected_version must be an integer")
                command = message_from_json(cls, body.get("data", {}))
                client.runtime.codec.encode(command)  # field types checked before sending
            except (InvalidMessage, ValueError, TypeError) as exc:
                return self.problem(400, str(exc))
            command_id, future = client.send(
                aggregate_id,
                command,
                command_id=body.get("command_id"),
                expected_version=expected,
                correlation_id=str(body.get("correlation_id", "")),
                actor=str(body.get("actor", "")),
            )
            if request.query.get("wait", "true").lower() in ("0", "false", "no"):
                return self.json({"command_id": command_id, "status": "submitted"}, status=202)
            timeout = float(request.query.get("timeout", "10"))
            assert future is not None
            try:
                result = await asyncio.wait_for(asyncio.wrap_future(future), timeout)
            except TimeoutError:
                return self.json(
                    {
                        "command_id": command_id,
                        "status": "submitted",
                        "detail": f"no result within {timeout}s; the command is still queued",
                    },
                    status=202,
                )
            status = 200 if result.accepted else STATUS_BY_REASON.get(result.reason, 422)
            return self.json(to_json(result), status=status)

        def problem(self, status: int, detail: str) -> Response:
            return self.json({"error": detail}, status=status)
