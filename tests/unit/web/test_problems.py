"""The one problem mapping: each error an endpoint raises answers its status, problem type,
reason, fields and `Retry-After`; anything else stays a 500 (through `server.install`)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from streams.config import Settings
from streams.kafka.runtime import TopicMismatch, TopicProblem
from streams.read.history import NotInHistory
from streams.web import server
from streams.web.envelope import BadEnvelope
from streams.web.query.params import BadParameter
from streams.web.query.routing import WorkerUnavailable
from streams.web.realtime.hub import Refused
from streams.web.realtime.subscription import NotReady, SubscriptionError, TokenError
from streams.web.responses import (
    BadHeader,
    NotFound,
    NotReached,
    Rebalancing,
    Starting,
    TooManyWaiters,
)

MISMATCH = TopicMismatch([TopicProblem("orders.events", "partitions", "4", "2")])

CASES: list[tuple[Exception, int, str, str | None, dict[str, Any]]] = [
    # error, status, reason, Retry-After, extra fields of the body
    (BadParameter("limit must be an integer, got 'x'"), 400, "invalid_parameter", None, {"field": "limit"}),
    (BadEnvelope("invalid_json", "the body is not JSON"), 400, "invalid_json", None, {"field": ""}),
    (BadEnvelope("invalid_field", "data.x: bad", "data.x"), 400, "invalid_field", None, {"field": "data.x"}),
    (BadHeader("Origin", "Origin must be …"), 400, "invalid_header", None, {"field": "Origin"}),
    (NotFound("unknown context 'nope'"), 404, "not_found", None, {}),
    (NotInHistory("no aggregate o-1"), 404, "not_found", None, {}),
    (NotReached("v has not reached version 3"), 409, "not_reached", "1", {}),
    (WorkerUnavailable("worker http://w did not answer"), 502, "worker_unavailable", None, {}),
    (Starting("the read side of orders is starting"), 503, "starting", "1", {}),
    (Rebalancing("partition 1 is moving; retry"), 503, "rebalancing", "1", {}),
    (TooManyWaiters("9 requests are waiting"), 503, "too_many_waiters", "1", {}),
    (MISMATCH, 503, "topic_mismatch", "30", {}),
    (Refused(429, "too many streams"), 429, "too_many_streams", "5", {}),
    (Refused(503, "this worker is full"), 503, "starting", "5", {}),
    (SubscriptionError("views must be a list"), 400, "bad_subscription", None, {"code": "bad_subscription"}),
    (NotReady("starting"), 503, "starting", "1", {"code": "starting"}),
    (TokenError("token_expired", "deleted"), 410, "token_expired", None, {"code": "token_expired"}),
]


def _answers(error: BaseException, path: str = "/x") -> tuple[int, dict[str, str], Any]:
    async def handler(_request: web.Request) -> web.Response:
        raise error

    app = web.Application()
    settings = Settings(rate_limit=0)
    server.install(SimpleNamespace(web=SimpleNamespace(web_app=app)), settings, lambda: b"s", [])
    app.router.add_get("/x", handler)

    async def main() -> tuple[int, dict[str, str], Any]:
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            response = await client.get(path)
            if response.content_type.endswith("json"):
                body = await response.json(content_type=None)
            else:
                body = await response.text()
            return response.status, dict(response.headers), body

    return asyncio.run(main())


@pytest.mark.parametrize(("error", "status", "reason", "retry_after", "extra"), CASES)
def test_each_error_answers_its_problem(
    error: Exception, status: int, reason: str, retry_after: str | None, extra: dict[str, Any]
) -> None:
    got, headers, body = _answers(error)
    assert got == status
    assert headers["Content-Type"].startswith("application/problem+json")
    assert headers.get("Retry-After") == retry_after
    assert body["type"] == f"/problems/{reason}" and body["reason"] == reason
    assert body["status"] == status and body["detail"] == body["error"] == str(error)
    assert {k: body[k] for k in extra} == extra


def test_another_error_is_a_500_not_a_problem() -> None:
    """A KeyError is a LookupError, but a bug: it must not pass for a 404."""
    status, _, _ = _answers(KeyError("bug"))
    assert status == 500


def test_aiohttp_answers_pass_through() -> None:
    status, _, _ = _answers(web.HTTPTooManyRequests())
    assert status == 429
    status, _, _ = _answers(RuntimeError(), path="/no-such-route")
    assert status == 404
