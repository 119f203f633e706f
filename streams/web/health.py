"""`GET /health` (liveness) and `GET /metrics` (Prometheus text)."""

from __future__ import annotations

from aiohttp import web

from streams import metrics
from streams.config import Settings
from streams.web.responses import ok


class HealthEndpoints:
    """Whether the worker answers, and its metrics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def routes(self) -> list[web.AbstractRouteDef]:
        """This group's routes."""
        return [web.get("/health", self.health), web.get("/metrics", self.metrics)]

    async def health(self, request: web.Request) -> web.Response:
        """The worker is up, with the contexts it runs."""
        return ok({"status": "ok", "contexts": list(self.settings.contexts)})

    async def metrics(self, request: web.Request) -> web.Response:
        """Every metric of this process."""
        body, content_type = metrics.render()
        return web.Response(body=body, content_type=content_type.split(";")[0])
