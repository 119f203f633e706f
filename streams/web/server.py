"""The worker's HTTP surface assembled: the rate limit first (so refused requests count too),
then the guard, then the problem mapping (`problems.py`), then every endpoint group's routes.

One routing style: each endpoint group is a class with a `routes()` list of aiohttp route
definitions, added to the Faust worker's aiohttp application before it starts; a group with an
`on_shutdown(app)` coroutine has it called when the server begins to stop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from aiohttp import web

from streams.config import Settings
from streams.web import auth
from streams.web.peers import Peers
from streams.web.problems import problems
from streams.web.ratelimit import rate_limit


class EndpointGroup(Protocol):
    """A set of related endpoints."""

    def routes(self) -> list[web.AbstractRouteDef]:
        """The group's routes."""


def install(
    faust_app: Any, settings: Settings, secret: Callable[[], bytes | None], groups: Iterable[EndpointGroup]
) -> None:
    """Add the guard middleware and every group's routes to a Faust app's web application."""
    web_app: web.Application = faust_app.web.web_app
    if settings.rate_limit > 0:
        web_app.middlewares.append(rate_limit(settings.rate_limit, Peers(settings.trusted_proxies), secret))
    auth.install(web_app, settings, secret)
    web_app.middlewares.append(problems)  # innermost: what the handlers raise
    for group in groups:
        web_app.router.add_routes(group.routes())
        on_shutdown = getattr(group, "on_shutdown", None)
        if on_shutdown is not None:  # e.g. close the real-time streams before the server waits on them
            web_app.on_shutdown.append(on_shutdown)
