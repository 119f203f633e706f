"""`GET /dashboard`: charts of this worker's own `/metrics` for people (a page of the worker's
own: no CDN, no external script). The page itself holds no data, so it is open; it asks for the
bearer token (kept in the tab's sessionStorage) and polls `/metrics` with it."""

from __future__ import annotations

import html
from pathlib import Path

from aiohttp import web

DASHBOARD_PAGE = Path(__file__).resolve().parent / "static" / "dashboard.html"
WORKER_MARK = "{{worker}}"


class DashboardEndpoints:
    """The dashboard page, naming the worker it shows (several workers: one page each)."""

    def __init__(self, worker: str) -> None:
        self.page = DASHBOARD_PAGE.read_text().replace(WORKER_MARK, html.escape(worker, quote=True))

    def routes(self) -> list[web.AbstractRouteDef]:
        """This group's routes."""
        return [web.get("/dashboard", self.dashboard)]

    async def dashboard(self, request: web.Request) -> web.Response:
        """The page."""
        return web.Response(
            text=self.page,
            content_type="text/html",
            headers={"Cache-Control": "no-store", "Content-Security-Policy": CSP},
        )


CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
)
"""Nothing but the page itself and requests to this worker."""
