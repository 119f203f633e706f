"""The OpenAPI document and the worker's routes describe each other: neither can drift.

The worker's composition root is imported (no Kafka is contacted), its aiohttp router asked to
resolve every path and method of the document, and every route it registers checked to be
described by at least one of them.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from aiohttp.web_urldispatcher import SystemRoute

from streams import app as worker
from streams.web.openapi import openapi_document

DOCUMENT = openapi_document(worker.settings, worker.contexts)
ROUTER = worker.app.web.web_app.router


def _resolve(method: str, path: str) -> Any:
    request = make_mocked_request(method.upper(), path, app=worker.app.web.web_app)
    return asyncio.run(ROUTER.resolve(request)).route


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "some-id", path)


def test_every_described_operation_is_a_route_of_the_worker() -> None:
    for path, item in DOCUMENT["paths"].items():
        for method in item:
            route = _resolve(method, _concrete(path))
            assert not isinstance(route, SystemRoute), f"{method.upper()} {path} is described but not served"


def test_every_route_of_the_worker_is_described() -> None:
    described = {
        (m.upper(), _resolve(m, _concrete(p)).resource.canonical)
        for p, item in DOCUMENT["paths"].items()
        for m in item
    }
    for route in ROUTER.routes():
        if route.method == "HEAD" or isinstance(route.resource, web.StaticResource):
            continue
        assert (route.method, route.resource.canonical) in described, (
            f"{route.method} {route.resource.canonical}"
        )


def test_each_command_type_has_its_schema_and_each_view_its_filters() -> None:
    paths = DOCUMENT["paths"]
    place = paths["/orders/commands/PlaceOrder"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    data = place["properties"]["data"]
    assert data["required"] == ["customer_id"] and data["properties"]["customer_id"]["maxLength"] == 255
    assert place["additionalProperties"] is False and place["required"] == ["aggregate_id"]
    summary = paths["/orders/views/order-summary"]["get"]["parameters"]
    assert "status" in {p["name"] for p in summary}
    assert DOCUMENT["openapi"] == "3.1.0" and "Problem" in DOCUMENT["components"]["schemas"]
