"""`GET /processes/{process}/{correlation_id}`: the instance `streams process` shows, over HTTP;
a name, id or read that cannot be answered is a problem with its reason, never a 5xx for input."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from confluent_kafka import KafkaError, KafkaException

from streams import app as worker
from streams.config import Settings
from streams.contexts.settlement import process
from streams.core.processes import Deadline, ProcessInstance, SentCommand
from streams.processes.inspect import as_json
from streams.web.problems import problems
from streams.web.query import processes as endpoint

INSTANCE = ProcessInstance(
    "settlement", "r-1", '{"status": "open"}', 3,
    (Deadline("close", "d-1", 1_700_000_000_000),),
    (SentCommand("p:settlement:reserve.p%2Fb:0:r-1", "wallet", "p", "ReserveFunds", "accepted"),),
    "2026-12-07T00:00:00Z",
)  # fmt: skip


def _get(path: str, read: Callable[..., ProcessInstance | None], monkeypatch: pytest.MonkeyPatch) -> Any:
    """(status, body, headers) of one GET against the endpoint, `read` standing for the changelog."""
    monkeypatch.setattr(endpoint, "committed_instance", read)
    monkeypatch.setattr(endpoint, "process_codec", lambda settings: None)

    async def call() -> tuple[int, Any, Any]:
        app = web.Application(middlewares=[problems])
        group = endpoint.ProcessEndpoints(Settings(), {"settlement": process})
        app.router.add_routes(group.routes())
        async with TestClient(TestServer(app)) as client:
            response = await client.get(path)
            return response.status, await response.json(), response.headers

    return asyncio.run(call())


def test_an_instance_is_answered_as_the_cli_prints_it(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str]] = []

    def read(settings: Settings, process: str, correlation_id: str, codec: Any) -> ProcessInstance:
        asked.append((process, correlation_id))
        return INSTANCE

    status, body, _ = _get("/processes/settlement/r-1", read, monkeypatch)
    assert status == 200 and body == as_json(INSTANCE)
    assert asked == [("settlement", "r-1")]
    assert body["deadlines"][0]["due"] == "2023-11-14T22:13:20.000Z"
    assert body["sent"][0]["status"] == "accepted"


@pytest.mark.parametrize(
    ("path", "status", "reason"),
    [
        ("/processes/nope/r-1", 404, "unknown_process"),
        ("/processes/settlement/r-404", 404, "unknown_instance"),
        ("/processes/settlement/bad%01id", 400, "invalid_identifier"),
        (f"/processes/settlement/{'r' * 256}", 400, "invalid_identifier"),
        ("/processes/settlement/r%C2%85", 400, "invalid_identifier"),  # U+0085
    ],
)
def test_what_cannot_be_answered_is_a_4xx_with_its_reason(
    path: str, status: int, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    got, body, _ = _get(path, lambda *args: None, monkeypatch)
    assert (got, body["reason"]) == (status, reason), body
    if status == 400:
        assert body["field"] == "correlation_id"


def test_an_unreadable_changelog_says_when_to_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    def read(*args: Any) -> None:
        raise KafkaException(KafkaError(KafkaError._TRANSPORT))

    status, body, headers = _get("/processes/settlement/r-1", read, monkeypatch)
    assert (status, body["reason"], headers["Retry-After"]) == (503, "changelog_unreadable", "2")


def test_the_worker_routes_process_paths_to_the_process_endpoint() -> None:
    """Even a process path whose second segment is a context route's (`views`, `aggregates`)."""
    router = worker.app.web.web_app.router
    for path in ("/processes/settlement/r-1", "/processes/views/x", "/processes/aggregates/x"):
        request = make_mocked_request("GET", path, app=worker.app.web.web_app)
        match = asyncio.run(router.resolve(request))
        assert match.route.resource is not None and match.route.resource.canonical == (
            "/processes/{process}/{correlation_id}"
        ), path
