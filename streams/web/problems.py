"""One mapping of the errors the endpoints raise to problem+json answers (RFC 9457).

A handler raises what went wrong (a bad query parameter or envelope, an unknown context, view
or aggregate, a worker still starting, a partition moving between workers, a waiter that did not
see its version in time, topics that differ from their declaration) and the `problems`
middleware answers it: 400, 404, 409, 502 or 503, with `Retry-After` where a retry can succeed.
Anything else is a bug: it stays a 500. The middleware is the innermost one, so the guard and
the rate limit answer what they refuse themselves, before any handler runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from streams.kafka.forgetting import AuditNotWritten
from streams.kafka.runtime import TopicMismatch
from streams.privacy.errors import KeyStoreUnavailable, NoMasterKey, WrongMasterKey
from streams.read.history import NotInHistory
from streams.web.envelope import BadEnvelope
from streams.web.query.params import BadParameter
from streams.web.query.routing import WorkerUnavailable
from streams.web.realtime.hub import Refused
from streams.web.realtime.subscription import NotReady, SubscriptionError, TokenError
from streams.web.responses import BadHeader, Problem, Starting, problem

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

RETRY_AFTER_S = {
    "starting": 1,
    "rebalancing": 1,
    "too_many_waiters": 1,
    "not_reached": 1,
    "topic_mismatch": 30,
    "key_store_unavailable": 5,
    "changelog_unreadable": 2,
}
"""Seconds a client is told to wait before it asks again, per reason (none: retrying will not help)."""


REFUSED_RETRY_AFTER_S = 5
"""What a refused real-time connection is told to wait: streams are long-lived, slots free slowly."""


def _problem(
    status: int, detail: str, reason: str | None = None, *, retry: int | None = None, **extra: Any
) -> web.Response:
    retry = RETRY_AFTER_S.get(reason or "") if retry is None else retry
    headers = None if retry is None else {"Retry-After": str(retry)}
    return problem(status, detail, reason=reason, headers=headers, **extra)


def answer(exc: BaseException) -> web.Response | None:
    """The problem answer of an error an endpoint raised (None: not one of them, a bug: 500)."""
    if isinstance(exc, Problem):
        return _problem(exc.status, str(exc), exc.reason, **exc.extra)
    if isinstance(exc, BadParameter):
        return _problem(400, str(exc), "invalid_parameter", field=exc.field)
    if isinstance(exc, BadEnvelope):
        return _problem(400, str(exc), exc.reason, field=exc.field)
    if isinstance(exc, BadHeader):
        return _problem(400, str(exc), "invalid_header", field=exc.header)
    if isinstance(exc, NotInHistory):
        return _problem(404, str(exc))
    if isinstance(exc, Starting):
        return _problem(503, str(exc), "starting")
    if isinstance(exc, WorkerUnavailable):
        return _problem(502, str(exc), "worker_unavailable")
    if isinstance(exc, TopicMismatch):  # the operator's to fix: the worker says so, and nothing is sent
        return _problem(503, str(exc), "topic_mismatch")
    if isinstance(exc, NoMasterKey):  # personal data this deployment cannot protect: refused, not kept
        return _problem(422, str(exc), exc.reason)
    if isinstance(exc, WrongMasterKey | KeyStoreUnavailable):  # personal fields' keys
        return _problem(503, str(exc), exc.reason)
    if isinstance(exc, AuditNotWritten):
        return _problem(503, str(exc), "audit_not_written", retry=1)
    return _realtime(exc)


def _realtime(exc: BaseException) -> web.Response | None:
    """A real-time stream refused before it starts (the WebSocket says the rest in frames)."""
    if isinstance(exc, Refused):
        reason = "too_many_streams" if exc.status == 429 else "starting"
        return _problem(exc.status, str(exc), reason, retry=REFUSED_RETRY_AFTER_S)
    if isinstance(exc, SubscriptionError):
        return _problem(400, str(exc), "bad_subscription", code="bad_subscription")
    if isinstance(exc, NotReady):
        return _problem(503, str(exc), "starting", code="starting")
    if isinstance(exc, TokenError):
        return _problem(410, str(exc), exc.code, code=exc.code)
    return None


@web.middleware
async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer the errors a handler raises as problems (see `answer`)."""
    try:
        return await handler(request)
    except Exception as exc:
        response = answer(exc)
        if response is None:
            raise
        return response
