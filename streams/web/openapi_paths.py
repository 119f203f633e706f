"""The OpenAPI document's parts per context (command, view and aggregate paths) and its building
blocks (problem responses, parameters); `streams.web.openapi` assembles the document."""

from __future__ import annotations

from typing import Any

from streams.wire.identifiers import MAX_IDENTIFIER_CHARS

PROBLEM = {"$ref": "#/components/schemas/Problem"}
IDENTIFIER = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_IDENTIFIER_CHARS,
    "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$",
}
OPTIONAL_IDENTIFIER = {**IDENTIFIER, "minLength": 0}


def problems(*statuses: int) -> dict[str, Any]:
    """The problem+json responses of the given statuses."""
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


def param(
    name: str, where: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    """A parameter object."""
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


def ok(
    description: str, schema: dict[str, Any] | None = None, media: str = "application/json"
) -> dict[str, Any]:
    """A success response with its schema."""
    return {"description": description, "content": {media: {"schema": schema or {"type": "object"}}}}


def command_path(context: str, name: str, data: dict[str, Any]) -> dict[str, Any]:
    """The path of one command type, its `data` schema the command's latest Avro schema."""
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
                param("wait", "query", {"type": "boolean", "default": True}, "wait for the result"),
                param(
                    "timeout",
                    "query",
                    {"type": "number", "minimum": 0, "maximum": 60, "default": 10},
                    "seconds to wait",
                ),
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": envelope}}},
            "responses": {
                "200": ok(
                    "accepted: the result, with the new version and the events' offsets",
                    {"$ref": "#/components/schemas/CommandResult"},
                ),
                "202": ok("queued: `wait=false`, or no result within `timeout`"),
                **problems(400, 401, 403, 404, 409, 413, 415, 422, 429, 503),
            },
        }
    }


def view_paths(context: str, view: Any) -> dict[str, Any]:
    """A view's list path (with its filters) and document path."""
    filters = [
        param(f, "query", {"type": "string"}, f"documents whose `{f}` equals this") for f in view.list_fields
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
                    param(
                        "limit",
                        "query",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50},
                        "page size",
                    ),
                    param(
                        "after", "query", {"type": "string"}, "the cursor: the `next` of the previous page"
                    ),
                ],
                "responses": {"200": ok("a page", page), **problems(400, 401, 403, 404, 429, 502, 503)},
            }
        },
        f"/{context}/views/{view.name}/{{entity_id}}": {
            "get": {
                "operationId": f"{context}.{view.name}.get",
                "tags": [context],
                "summary": f"one {view.name} document",
                "parameters": [
                    param("entity_id", "path", {"type": "string"}, "the document's id"),
                    param(
                        "min_version",
                        "query",
                        {"type": "integer", "minimum": 0},
                        "wait until the view has folded this version of `aggregate_id`",
                    ),
                    param(
                        "min_offset",
                        "query",
                        {"type": "integer", "minimum": 0},
                        "wait until the view has read past this event offset",
                    ),
                    param(
                        "aggregate_id",
                        "query",
                        {"type": "string"},
                        "the aggregate `min_version` is about (default: the document id)",
                    ),
                    param(
                        "timeout",
                        "query",
                        {"type": "number", "minimum": 0, "maximum": 60, "default": 5},
                        "seconds to wait",
                    ),
                ],
                "responses": {
                    "200": ok("the document", {"$ref": "#/components/schemas/Document"}),
                    **problems(400, 401, 403, 404, 409, 429, 502, 503),
                },
            }
        },
    }


def aggregate_paths(context: str, state: dict[str, Any]) -> dict[str, Any]:
    """An aggregate's state (now or as of a version/time) and its events; the context's views."""
    aggregate_id = param("aggregate_id", "path", {"type": "string"}, "the aggregate's id")
    return {
        f"/{context}/aggregates/{{aggregate_id}}": {
            "get": {
                "operationId": f"{context}.aggregate",
                "tags": [context],
                "summary": "the aggregate's state, now or at a version or time (time travel)",
                "parameters": [
                    aggregate_id,
                    param(
                        "at_version",
                        "query",
                        {"type": "integer", "minimum": 1},
                        "the state after this version",
                    ),
                    param(
                        "as_of",
                        "query",
                        {"type": "string"},
                        "the state at this time: ISO-8601 with a zone, or epoch ms",
                    ),
                ],
                "responses": {
                    "200": ok(
                        "the state",
                        {"type": "object", "properties": {"state": state, "version": {"type": "integer"}}},
                    ),
                    **problems(400, 401, 403, 404, 429, 502, 503),
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
                    param(
                        "from_version",
                        "query",
                        {"type": "integer", "minimum": 1, "default": 1},
                        "the first version",
                    ),
                    param(
                        "limit",
                        "query",
                        {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                        "page size",
                    ),
                ],
                "responses": {"200": ok("events"), **problems(400, 401, 403, 404, 429, 502, 503)},
            }
        },
        f"/{context}/views": {
            "get": {
                "operationId": f"{context}.views",
                "tags": [context],
                "summary": "each view version this worker runs: served or building, lag, error",
                "responses": {"200": ok("the views"), **problems(401, 403, 404, 429, 503)},
            }
        },
    }


PROCESS_INSTANCE = {
    "type": "object",
    "description": "the instance as `streams process <process> <id>` prints it",
    "required": ["process", "correlation_id", "version", "state", "deadlines", "sent"],
    "properties": {
        "process": {"type": "string"},
        "correlation_id": {"type": "string"},
        "version": {"type": "integer", "description": "inputs folded"},
        "state": {"description": "the manager's state as JSON"},
        "deadlines": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "due": {"type": "string", "description": "ISO-8601 UTC"},
                    "status": {"type": "string", "enum": ["pending", "emitted", "void"]},
                    "deadline_id": {"type": "string"},
                },
            },
        },
        "sent": {
            "type": "array",
            "description": "the latest commands sent, each with its outcome once known",
            "items": {
                "type": "object",
                "properties": {
                    "command_id": {"type": "string"},
                    "context": {"type": "string"},
                    "aggregate_id": {"type": "string"},
                    "command_type": {"type": "string"},
                    "status": {"type": "string", "enum": ["", "accepted", "rejected"]},
                },
            },
        },
        "updated_at": {"type": "string"},
    },
}


def process_path(processes: list[str]) -> dict[str, Any]:
    """The path of a process instance (`processes`: the managers this worker hosts)."""
    name = {"type": "string", **({"enum": processes} if processes else {})}
    return {
        "/processes/{process}/{correlation_id}": {
            "get": {
                "operationId": "processes.instance",
                "tags": ["processes"],
                "summary": "a process instance: state, pending deadlines, commands sent and their outcomes",
                "parameters": [
                    param("process", "path", name, "the process manager's name"),
                    param("correlation_id", "path", IDENTIFIER, "the instance's correlation id"),
                ],
                "responses": {
                    "200": ok("the instance", PROCESS_INSTANCE),
                    **problems(400, 401, 403, 404, 429, 503),
                },
            }
        }
    }
