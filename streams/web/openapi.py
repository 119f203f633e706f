"""The OpenAPI 3.1 description of the worker's HTTP API, built from what the worker runs.

Every route is described, per context: one command path per command type, whose `data` schema is
the command's latest Avro schema as JSON Schema (`streams.wire.validation.json_schema`, the very
rules the API enforces), one list and one document path per view, with the view's filters.
Errors are RFC 9457 problem details. `tests/unit/web/test_openapi.py` checks the document
against the routes the worker registers, so neither can change without the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from streams.config import Settings
from streams.core.decider import BoundedContext
from streams.web.responses import PROBLEM_TYPES
from streams.wire.identifiers import MAX_IDENTIFIER_CHARS
from streams.wire.schemas import catalog_for
from streams.wire.validation import json_schema

PROBLEM = {"$ref": "#/components/schemas/Problem"}
IDENTIFIER = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_IDENTIFIER_CHARS,
    "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
}
OPTIONAL_IDENTIFIER = {**IDENTIFIER, "minLength": 0}


def _problems(*statuses: int) -> dict[str, Any]:
    descriptions = {
        400: "the request is malformed; `reason` and `field` say what",
        401: "missing or wrong bearer token",
        403: "host, origin or forwarding signature not allowed",
        404: "no such context, view, document or aggregate",
        409: "a version conflict (commands), or the view has not reached the version asked for (reads)",
        413: "the body is over the size limit",
        415: "the body is not JSON",
        422: "a business rule was broken",
        429: "over the per-client rate; see Retry-After",
        502: "the worker owning the key did not answer",
        503: "starting or rebalancing; see Retry-After",
    }
    return {
        str(s): {"description": descriptions[s], "content": {"application/problem+json": {"schema": PROBLEM}}}
        for s in statuses
    }


def _param(
    name: str, where: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


def _ok(
    description: str, schema: dict[str, Any] | None = None, media: str = "application/json"
) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema or {"type": "object"}}}}


def _command_path(context: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
    envelope = {
        "type": "object",
        "additionalProperties": False,
        "required": ["aggregate_id"],
        "properties": {
            "aggregate_id": {
                **IDENTIFIER,
                "description": "the aggregate the command is for (the record key)",
            },
            "data": data,
            "expected_version": {"type": "integer", "minimum": 0, "maximum": 2**63 - 1},
            "command_id": {**OPTIONAL_IDENTIFIER, "description": "idempotency key (default: a new uuid)"},
            "correlation_id": OPTIONAL_IDENTIFIER,
            "actor": OPTIONAL_IDENTIFIER,
        },
    }
    return {
        "post": {
            "operationId": f"{context}.{name}",
            "tags": [context],
            "summary": data.get("description", name),
            "parameters": [
                _param("wait", "query", {"type": "boolean", "default": True}, "wait for the result"),
                _param(
                    "timeout",
                    "query",
                    {"type": "number", "minimum": 0, "maximum": 60, "default": 10},
                    "seconds to wait",
                ),
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": envelope}}},
            "responses": {
                "200": _ok(
                    "accepted: the result, with the new version and the events' offsets",
                    {"$ref": "#/components/schemas/CommandResult"},
                ),
                "202": _ok("queued: `wait=false`, or no result within `timeout`"),
                **_problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
            },
        }
    }


def _view_paths(context: str, view: Any) -> dict[str, Any]:
    filters = [
        _param(f, "query", {"type": "string"}, f"documents whose `{f}` equals this") for f in view.list_fields
    ]
    page = {
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/Document"}},
            "next": {"type": ["string", "null"], "description": "the cursor of the next page (`after`)"},
            "complete": {"type": "boolean"},
            "version_served": {"type": "integer"},
        },
    }
    return {
        f"/{context}/views/{view.name}": {
            "get": {
                "operationId": f"{context}.{view.name}.list",
                "tags": [context],
                "summary": f"{view.name} documents in id order, filtered",
                "parameters": [
                    *filters,
                    _param(
                        "limit",
                        "query",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                        "page size",
                    ),
                    _param(
                        "after", "query", {"type": "string"}, "the cursor: the `next` of the previous page"
                    ),
                ],
                "responses": {"200": _ok("a page", page), **_problems(400, 401, 403, 404, 429, 502, 503)},
            }
        },
        f"/{context}/views/{view.name}/{{entity_id}}": {
            "get": {
                "operationId": f"{context}.{view.name}.get",
                "tags": [context],
                "summary": f"one {view.name} document",
                "parameters": [
                    _param("entity_id", "path", {"type": "string"}, "the document's id"),
                    _param(
                        "min_version",
                        "query",
                        {"type": "integer", "minimum": 0},
                        "wait until the view has folded this version of `aggregate_id`",
                    ),
                    _param(
                        "min_offset",
                        "query",
                        {"type": "integer", "minimum": 0},
                        "wait until the view has read past this event offset",
                    ),
                    _param(
                        "aggregate_id",
                        "query",
                        {"type": "string"},
                        "the aggregate `min_version` is about (default: the document id)",
                    ),
                    _param(
                        "timeout",
                        "query",
                        {"type": "number", "minimum": 0, "maximum": 60, "default": 5},
                        "seconds to wait",
                    ),
                ],
                "responses": {
                    "200": _ok("the document", {"$ref": "#/components/schemas/Document"}),
                    **_problems(400, 401, 403, 404, 409, 429, 502, 503),
                },
            }
        },
    }


def _aggregate_paths(context: str, state: dict[str, Any]) -> dict[str, Any]:
    aggregate_id = _param("aggregate_id", "path", {"type": "string"}, "the aggregate's id")
    return {
        f"/{context}/aggregates/{{aggregate_id}}": {
            "get": {
                "operationId": f"{context}.aggregate",
                "tags": [context],
                "summary": "the aggregate's state, now or at a version or time (time travel)",
                "parameters": [
                    aggregate_id,
                    _param(
                        "at_version",
                        "query",
                        {"type": "integer", "minimum": 1},
                        "the state after this version",
                    ),
                    _param(
                        "as_of",
                        "query",
                        {"type": "string"},
                        "the state at this time: ISO-8601 with a zone, or epoch ms",
                    ),
                ],
                "responses": {
                    "200": _ok(
                        "the state",
                        {"type": "object", "properties": {"state": state, "version": {"type": "integer"}}},
                    ),
                    **_problems(400, 401, 403, 404, 429, 502, 503),
                },
            }
        },
        f"/{context}/aggregates/{{aggregate_id}}/events": {
            "get": {
                "operationId": f"{context}.aggregate.events",
                "tags": [context],
                "summary": "the aggregate's events, paged",
                "parameters": [
                    aggregate_id,
                    _param(
                        "from_version",
                        "query",
                        {"type": "integer", "minimum": 1, "default": 1},
                        "the first version",
                    ),
                    _param(
                        "limit",
                        "query",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                        "page size",
                    ),
                ],
                "responses": {"200": _ok("events"), **_problems(400, 401, 403, 404, 429, 502, 503)},
            }
        },
        f"/{context}/views": {
            "get": {
                "operationId": f"{context}.views",
                "tags": [context],
                "summary": "each view version this worker runs: served or building, lag, error",
                "responses": {"200": _ok("the views"), **_problems(401, 403, 404, 429, 503)},
            }
        },
    }


def _realtime(contexts: list[str]) -> dict[str, Any]:
    params = [
        _param("context", "query", {"type": "string", "enum": contexts}, "the context", required=True),
        _param("events", "query", {"type": "boolean", "default": True}, "push events"),
        _param("views", "query", {"type": "string"}, "view names, comma-separated"),
        _param("aggregate_id", "query", {"type": "string"}, "only this aggregate"),
        _param("aggregate_type", "query", {"type": "string"}, "only this aggregate type"),
        _param("event_type", "query", {"type": "string"}, "only this event type"),
        _param("resume", "query", {"type": "string"}, "a token of an earlier frame (or `Last-Event-ID`)"),
    ]
    return {
        "/realtime/sse": {
            "get": {
                "operationId": "realtime.sse",
                "tags": ["real time"],
                "summary": "Server-Sent Events: committed events and view changes, with resume tokens",
                "parameters": params,
                "responses": {
                    "200": _ok("the stream", {"type": "string"}, "text/event-stream"),
                    "410": _ok(
                        "the resume token is expired or not this deployment's", PROBLEM, "application/json"
                    ),
                    **_problems(400, 401, 403, 429, 503),
                },
            }
        },
        "/realtime/ws": {
            "get": {
                "operationId": "realtime.ws",
                "tags": ["real time"],
                "summary": 'WebSocket: send `{"type": "subscribe", …}`, receive frames with tokens',
                "responses": {
                    "101": {"description": "switching to the WebSocket protocol"},
                    **_problems(401, 403, 429),
                },
            }
        },
    }


def _fixed() -> dict[str, Any]:
    return {
        "/health": {
            "get": {
                "operationId": "health",
                "tags": ["worker"],
                "summary": "readiness: 200 once the write side, read side and secret serve",
                "security": [],
                "responses": {"200": _ok("ready"), "503": _ok("starting", {"type": "object"})},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["worker"],
                "summary": "Prometheus metrics",
                "responses": {
                    "200": _ok("metrics", {"type": "string"}, "text/plain"),
                    **_problems(401, 403, 429),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "tags": ["worker"],
                "summary": "this document",
                "security": [],
                "responses": {"200": _ok("OpenAPI 3.1")},
            }
        },
        "/docs": {
            "get": {
                "operationId": "docs",
                "tags": ["worker"],
                "summary": "this document, for people",
                "security": [],
                "responses": {"200": _ok("a page", {"type": "string"}, "text/html")},
            }
        },
        "/live": {
            "get": {
                "operationId": "live",
                "tags": ["real time"],
                "summary": "a page showing events and a read model as they commit",
                "responses": {
                    "200": _ok("a page", {"type": "string"}, "text/html"),
                    **_problems(401, 403, 429),
                },
            }
        },
    }


def _components() -> dict[str, Any]:
    return {
        "schemas": {
            "Problem": {
                "type": "object",
                "description": "RFC 9457 problem details; `reason` is machine-readable",
                "properties": {
                    "type": {
                        "type": "string",
                        "enum": [f"/problems/{r}" for r in PROBLEM_TYPES] + ["about:blank"],
                    },
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "reason": {"type": "string", "enum": list(PROBLEM_TYPES)},
                    "field": {"type": "string"},
                    "error": {"type": "string"},
                },
                "required": ["type", "title", "status"],
            },
            "CommandResult": {
                "type": "object",
                "properties": {
                    "command_id": {"type": "string"},
                    "aggregate_id": {"type": "string"},
                    "status": {"type": "string", "enum": ["accepted", "rejected"]},
                    "aggregate_version": {"type": "integer"},
                    "event_types": {"type": "array", "items": {"type": "string"}},
                    "event_offsets": {"type": "array", "items": {"type": "integer"}},
                    "reason": {"type": "string"},
                    "detail": {"type": "string"},
                    "duplicate": {"type": "boolean"},
                },
            },
            "Document": {
                "type": "object",
                "properties": {
                    "entity_id": {"type": "string"},
                    "view": {"type": "string"},
                    "state": {"type": "object"},
                    "last_event_version": {"type": "integer"},
                    "last_updated": {"type": "string"},
                },
            },
        },
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "description": "STREAMS_AUTH_TOKEN"},
            "accessToken": {
                "type": "apiKey",
                "in": "query",
                "name": "access_token",
                "description": "for WebSocket and EventSource",
            },
        },
    }


def openapi_document(settings: Settings, contexts: Mapping[str, BoundedContext[Any]]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a worker running `contexts`."""
    paths: dict[str, Any] = {**_fixed(), **_realtime(list(contexts))}
    for name, context in contexts.items():
        catalog = catalog_for(context)
        for command in context.commands:
            data = json_schema(json.loads(catalog.latest(command.__name__).text))
            paths[f"/{name}/commands/{command.__name__}"] = _command_path(name, command.__name__, data)
        for view in context.views:
            paths.update(_view_paths(name, view))
        paths.update(
            _aggregate_paths(name, json_schema(json.loads(catalog.latest(context.state_type.__name__).text)))
        )
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "streams worker",
            "version": "1",
            "description": "Commands, read models, time travel and real time of a streams worker.",
        },
        "servers": [{"url": settings.self_url()}],
        "paths": paths,
        "components": _components(),
    }
    if settings.auth_token:
        document["security"] = [{"bearer": []}, {"accessToken": []}]
    return document
