"""The HTTP API's limits on a live worker: the body size (413) and the per-client rate (429)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment, deployed

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployed(
        tmp_path_factory.mktemp("worker"),
        "lm",
        STREAMS_SINKS="0",
        STREAMS_MAX_BODY_BYTES="10000",
        STREAMS_RATE_LIMIT="5",
    ) as dep:
        yield dep


def test_a_body_over_the_limit_is_refused_with_413(deployment: Deployment) -> None:
    body = b'{"aggregate_id": "o-1", "data": {"customer_id": "' + b"c" * 20000 + b'"}}'

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield body[:5000]
        yield body[5000:]

    for content in (body, chunks()):
        answer = httpx.post(
            f"{deployment.url()}/orders/commands/PlaceOrder",
            content=content,
            headers={"Content-Type": "application/json"},
        )
        assert answer.status_code == 413, answer.text
        assert answer.json()["reason"] == "body_too_large"


def test_a_client_over_its_rate_gets_429_with_retry_after_and_health_stays_open(
    deployment: Deployment,
) -> None:
    answers = [httpx.get(f"{deployment.url()}/metrics") for _ in range(30)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited and all(a.status_code in (200, 429) for a in answers)
    assert int(limited[0].headers["Retry-After"]) >= 1 and limited[0].json()["reason"] == "rate_limited"
    assert httpx.get(f"{deployment.url()}/health").status_code == 200
