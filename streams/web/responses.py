"""The answers every endpoint shares: JSON, and errors as RFC 9457 problem details.

A problem is `application/problem+json` with `type` (`/problems/<reason>`), `title`, `status`,
`detail`, the machine-readable `reason` (stable across releases), the offending `field` when
there is one, and `error` (the same text as `detail`, as the API answered before).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

PROBLEM_TYPES: dict[str, str] = {
    "bad_request": "The request is malformed",
    "invalid_json": "The body is not valid JSON",
    "invalid_envelope": "The command envelope is invalid",
    "invalid_field": "A field of the message is invalid",
    "invalid_identifier": "An identifier is outside the policy",
    "invalid_parameter": "A query parameter is invalid",
    "unknown_command_type": "No such command type",
    "unauthorized": "Missing or wrong bearer token",
    "host_not_allowed": "This worker does not answer to that host name",
    "origin_not_allowed": "Requests from that origin are not allowed",
    "bad_forward": "The forwarding signature is not valid",
    "invalid_header": "A request header is malformed",
    "not_found": "Not found",
    "unknown_process": "No such process manager on this worker",
    "unknown_instance": "The process has no such instance",
    "changelog_unreadable": "The process's changelog could not be read",
    "unsupported_media_type": "The body is not JSON",
    "body_too_large": "The body is over the size limit",
    "rate_limited": "Too many requests",
    "too_many_streams": "Too many real-time streams from this address",
    "bad_subscription": "The real-time subscription is invalid",
    "token_invalid": "The resume token is not one this deployment gave",
    "token_expired": "The records after the resume token were deleted",
    "starting": "The worker is starting",
    "rebalancing": "The partition is moving between workers",
    "worker_unavailable": "The worker owning the key did not answer",
    "timeout": "Not reached in time",
    "not_reached": "The view has not reached the version asked for yet",
    "version_conflict": "The aggregate is at another version",
    "rule_broken": "A business rule was broken",
    "erasure_needs_token": "Erasure is served only by a worker with a bearer token",
    "no_master_key": "Personal fields need a master key, and none is configured",
    "wrong_master_key": "A data key does not unwrap with the configured master key",
    "key_store_unavailable": "The key store (PostgreSQL) could not be reached",
    "audit_not_written": "The key was deleted but the audit record was not appended",
}
"""Every `reason` a problem can carry, with its title."""

_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
    502: "worker_unavailable",
    503: "starting",
    504: "timeout",
}


class BadHeader(ValueError):
    """A header the server parses is malformed (400, `invalid_header`); `header` names it."""

    def __init__(self, header: str, message: str) -> None:
        super().__init__(message)
        self.header = header


def header_problem(exc: BadHeader) -> web.Response:
    """The answer to a malformed header."""
    return problem(400, str(exc), reason="invalid_header", field=exc.header)


class Starting(Exception):
    """What was asked for exists, but this worker has not started serving it yet (503)."""


class Problem(Exception):
    """A request that is answered with a problem: `status`, `reason` (None: the status's
    default) and extra fields of the body; `Retry-After` follows from the reason."""

    status = 400
    reason: str | None = None

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.extra = extra


class NotFound(Problem):
    """No such context, view, document or aggregate (404)."""

    status = 404


class Rebalancing(Problem):
    """The partition asked for is moving between workers (503)."""

    status = 503
    reason = "rebalancing"


class TooManyWaiters(Problem):
    """This worker holds as many waiting requests as it may (503)."""

    status = 503
    reason = "too_many_waiters"


class NotReached(Problem):
    """A waiting read did not see the version or offset it asked for in time (409)."""

    status = 409
    reason = "not_reached"


def problem(
    status: int,
    detail: str,
    *,
    reason: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    """An error answer as RFC 9457 problem details."""
    reason = reason or _BY_STATUS.get(status, "bad_request")
    body = {
        "type": f"/problems/{reason}",
        "title": PROBLEM_TYPES.get(reason, reason),
        "status": status,
        "detail": detail,
        "reason": reason,
        "error": detail,
        **extra,
    }
    return web.json_response(body, status=status, headers=headers, content_type="application/problem+json")


def ok(body: Any, status: int = 200) -> web.Response:
    """A JSON answer."""
    return web.json_response(body, status=status)
