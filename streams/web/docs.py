"""`GET /openapi.json` (the API described, `streams.web.openapi`) and `GET /docs` (the same, for
people: a page of this worker's own, no CDN)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from streams.config import Settings
from streams.core.decider import BoundedContext
from streams.core.processes import ProcessManager
from streams.web.openapi import openapi_document

DOCS_PAGE = Path(__file__).resolve().parent / "static" / "docs.html"


class DocsEndpoints:
    """The API's description, as JSON and as a page."""

    def __init__(
        self,
        settings: Settings,
        contexts: Mapping[str, BoundedContext[Any]],
        processes: Mapping[str, ProcessManager[Any]] | None = None,
    ) -> None:
        self.document = openapi_document(settings, contexts, processes)

    def routes(self) -> list[web.AbstractRouteDef]:
        """This group's routes."""
        return [web.get("/openapi.json", self.openapi), web.get("/docs", self.docs)]

    async def openapi(self, request: web.Request) -> web.Response:
        """The OpenAPI 3.1 document."""
        return web.json_response(self.document)

    async def docs(self, request: web.Request) -> web.StreamResponse:
        """The page that renders it."""
        return web.FileResponse(DOCS_PAGE)
