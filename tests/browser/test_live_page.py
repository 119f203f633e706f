"""The live page in real headless Chromium (Debian's `chromium`, driven by playwright-core).

The worker runs with an auth token and its real read side: the page shows the events as they
commit and the `order-summary` document as the projector updates it.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from streams.client import CommandClient
from streams.contexts.orders import PlaceOrder
from tests.browser.kit import HERE, TOKEN, token_worker
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with token_worker("b", tmp_path_factory.mktemp("worker")) as dep:
        with CommandClient(dep.settings(), "orders") as client:  # waits out the group join
            client.execute("warm-up", PlaceOrder("c-0"), timeout=120)
        yield dep


def test_live_page_shows_events_and_read_model_updates(deployment: Deployment) -> None:
    aggregate = f"order-{uuid.uuid4().hex[:6]}"
    run = subprocess.run(
        [
            "node",
            "live_page.mjs",
            f"http://127.0.0.1:{deployment.ports['w1']}",
            TOKEN,
            "order-summary",
            aggregate,
        ],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert [c.split()[:2] for c in result["commands"]] == [["200", "accepted"], ["200", "accepted"]]
    assert result["events"][0].startswith(f"{aggregate} v1 OrderPlaced")
    assert (
        result["events"][1].startswith(f"{aggregate} v2 ItemAdded") and '"sku":"book"' in result["events"][1]
    )
    document = result["readmodel"]
    assert document["version"] == "2"
    assert document["state"]["status"] == "placed" and document["state"]["total_cents"] == 3000
    assert [item["sku"] for item in document["state"]["items"]] == ["book"]
