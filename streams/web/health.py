"""`GET /health` (liveness) and `GET /metrics` (Prometheus text)."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from streams import metrics
from streams.config import Settings
from streams.kafka.hosting import Readiness
from streams.kafka.runtime import TOPIC_PROBLEMS
from streams.web.responses import ok


class HealthEndpoints:
    """Whether the worker serves, and its metrics."""

    def __init__(
        self,
        settings: Settings,
        readiness: Readiness,
        stopped: Callable[[], dict[str, str]] = dict,
    ) -> None:
        self.settings = settings
        self.readiness = readiness
        self.stopped = stopped
        """The stages that stopped by themselves (stage name -> why): the worker serves no more."""

    def routes(self) -> list[web.AbstractRouteDef]:
        """This group's routes."""
        return [web.get("/health", self.health), web.get("/metrics", self.metrics)]

    async def health(self, request: web.Request) -> web.Response:
        """200 once every part of the worker has started (its write side, read side and secret),
        503 with the missing parts and `Retry-After` before: a readiness probe. 503 `topic_mismatch`
        while a topic it relies on differs from its declaration (the stage using it does not run),
        503 `stopped` with each stage that stopped by itself (a window stage's poison policy) and
        why. Neither has `Retry-After`: waiting does not help, an operator must act."""
        problems = TOPIC_PROBLEMS.all()
        if problems:
            topics = [p.as_dict() for p in problems]
            body = {"status": "topic_mismatch", "topics": topics, **self._identity()}
            return web.json_response(body, status=503)
        stopped = self.stopped()
        if stopped:
            stages = [{"stage": name, "error": why} for name, why in sorted(stopped.items())]
            body = {"status": "stopped", "stopped": stages, **self._identity()}
            return web.json_response(body, status=503)
        missing = self.readiness.missing()
        if missing:
            body = {"status": "starting", "starting": missing, **self._identity()}
            return web.json_response(body, status=503, headers={"Retry-After": "1"})
        return ok({"status": "ok", **self._identity()})

    def _identity(self) -> dict[str, object]:
        """Which deployment answers: lets a client tell this worker from another app's."""
        return {
            "app": self.settings.app_id,
            "topic_prefix": self.settings.topic_prefix,
            "contexts": list(self.settings.contexts),
        }

    async def metrics(self, request: web.Request) -> web.Response:
        """Every metric of this process."""
        body, content_type = metrics.render()
        return web.Response(body=body, content_type=content_type.split(";")[0])
