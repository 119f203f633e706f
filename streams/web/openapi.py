"""The OpenAPI 3.1 description of the worker's HTTP API, built from what the worker runs.

Every route is described, per context: one command path per command type, whose `data` schema is
the command's latest Avro schema as JSON Schema (`streams.wire.validation.json_schema`, the very
rules the API enforces), one list and one document path per view, with the view's filters; and
one path for the instances of the process managers the worker hosts. Errors are RFC 9457
problem details. `tests/unit/web/test_openapi.py` checks the document against the routes the
worker registers, so neither can change without the other.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from streams.config import Settings
from streams.core.decider import BoundedContext
from streams.core.processes import ProcessManager
from streams.web.openapi_paths import (
    IDENTIFIER,
    PROBLEM,
    aggregate_paths,
    command_path,
    ok,
    param,
    problems,
    process_path,
    view_paths,
)
from streams.web.responses import PROBLEM_TYPES
from streams.wire.schemas import catalog_for
from streams.wire.validation import json_schema


def _realtime(contexts: list[str]) -> dict[str, Any]:
    params = [
        param("context", "query", {"type": "string", "enum": contexts}, "the context", required=True),
        param("events", "query", {"type": "boolean", "default": True}, "push events"),
        param("views", "query", {"type": "string"}, "view names, comma-separated"),
        param("aggregate_id", "query", {"type": "string"}, "only this aggregate"),
        param("aggregate_type", "query", {"type": "string"}, "only this aggregate type"),
        param("event_type", "query", {"type": "string"}, "only this event type"),
        param("resume", "query", {"type": "string"}, "a token of an earlier frame (or `Last-Event-ID`)"),
    ]
    return {
        "/realtime/sse": {
            "get": {
                "operationId": "realtime.sse",
                "tags": ["real time"],
                "summary": "Server-Sent Events: committed events and view changes, with resume tokens",
                "parameters": params,
                "responses": {
                    "200": ok("the stream", {"type": "string"}, "text/event-stream"),
                    "410": ok(
                        "the resume token is expired or not this deployment's", PROBLEM, "application/json"
                    ),
                    **problems(400, 401, 403, 429, 503),
                },
            }
        },
        "/realtime/frames": {
            "get": {
                "operationId": "realtime.frames",
                "tags": ["real time"],
                "summary": "when this worker published the frames of given records, to how many subscribers",
                "parameters": [
                    params[0],
                    param(
                        "at",
                        "query",
                        {"type": "string"},
                        "topic:partition:offset, comma-separated",
                        required=True,
                    ),
                ],
                "responses": {"200": ok("one entry per position"), **problems(400, 401, 403, 429)},
            }
        },
        "/realtime/ws": {
            "get": {
                "operationId": "realtime.ws",
                "tags": ["real time"],
                "summary": 'WebSocket: send `{"type": "subscribe", …}`, receive frames with tokens',
                "responses": {
                    "101": {"description": "switching to the WebSocket protocol"},
                    **problems(401, 403, 429),
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
                "responses": {"200": ok("ready"), "503": ok("starting", {"type": "object"})},
            }
        },
        "/metrics": {
            "get": {
                "operationId": "metrics",
                "tags": ["worker"],
                "summary": "Prometheus metrics",
                "responses": {
                    "200": ok("metrics", {"type": "string"}, "text/plain"),
                    **problems(401, 403, 429),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "tags": ["worker"],
                "summary": "this document",
                "security": [],
                "responses": {"200": ok("OpenAPI 3.1")},
            }
        },
        "/docs": {
            "get": {
                "operationId": "docs",
                "tags": ["worker"],
                "summary": "this document, for people",
                "security": [],
                "responses": {"200": ok("a page", {"type": "string"}, "text/html")},
            }
        },
        "/dashboard": {
            "get": {
                "operationId": "dashboard",
                "tags": ["worker"],
                "summary": "charts of this worker's /metrics (the page asks for the bearer token)",
                "security": [],
                "responses": {"200": ok("a page", {"type": "string"}, "text/html")},
            }
        },
        "/privacy/subjects/{subject}": {
            "delete": {
                "operationId": "privacy.forget",
                "tags": ["privacy"],
                "summary": "forget a data subject: delete its key, append SubjectForgotten (docs/privacy.md)",
                "parameters": [param("subject", "path", IDENTIFIER, "the data subject's id")],
                "responses": {
                    "200": ok(
                        "the key is deleted (`key_deleted`: whether there was one), the audit appended",
                        {
                            "type": "object",
                            "properties": {
                                "subject": {"type": "string"},
                                "key_deleted": {"type": "boolean"},
                                "audit": {"type": "object"},
                            },
                        },
                    ),
                    **problems(400, 401, 403, 429, 503),
                },
            }
        },
        "/live": {
            "get": {
                "operationId": "live",
                "tags": ["real time"],
                "summary": "a page showing events and a read model as they commit",
                "responses": {
                    "200": ok("a page", {"type": "string"}, "text/html"),
                    **problems(401, 403, 429),
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


def openapi_document(
    settings: Settings,
    contexts: Mapping[str, BoundedContext[Any]],
    processes: Mapping[str, ProcessManager[Any]] | None = None,
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of a worker running `contexts` and hosting `processes`."""
    paths: dict[str, Any] = {**_fixed(), **_realtime(list(contexts)), **process_path(list(processes or {}))}
    for name, context in contexts.items():
        catalog = catalog_for(context)
        for command in context.commands:
            data = json_schema(json.loads(catalog.latest(command.__name__).text))
            paths[f"/{name}/commands/{command.__name__}"] = command_path(name, command.__name__, data)
        for view in context.views:
            paths.update(view_paths(name, view))
        paths.update(
            aggregate_paths(name, json_schema(json.loads(catalog.latest(context.state_type.__name__).text)))
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
