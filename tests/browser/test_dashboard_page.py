"""The dashboard in real headless Chromium (Debian's `chromium`, driven by playwright-core, as
the live page's tests), over a real worker while commands flow.

The page must draw every chart, load nothing from elsewhere, and show the same totals as
`/metrics` once the traffic has stopped. The screenshot, taken while the traffic flows, is saved
(`DASHBOARD_SCREENSHOT`, else the test's temporary directory) after `DASHBOARD_HOLD_S` seconds
of traffic at least: docs/dashboard.png is one, taken with `DASHBOARD_HOLD_S=90`.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.client import CommandClient
from streams.contexts.orders import ConfirmOrder, PlaceOrder
from tests.browser.kit import HERE, TOKEN, token_worker
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with token_worker("bd", tmp_path_factory.mktemp("worker"), STREAMS_WORKER_ID="dash-w1") as dep:
        yield dep


def scrape(dep: Deployment) -> dict[str, float]:
    """Sums of the counters the page shows, from the worker's /metrics."""
    request = urllib.request.Request(f"{dep.url()}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    sums = {"accepted": 0.0, "rejected": 0.0, "events": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "streams_commands_total":
                sums["accepted" if sample.labels["status"] == "accepted" else "rejected"] += sample.value
            elif sample.name == "streams_events_appended_total":
                sums["events"] += sample.value
    return sums


class Traffic:
    """Commands at a steady pace until stopped: new orders (accepted) and confirmations of
    orders that do not exist (rejected)."""

    def __init__(self, dep: Deployment) -> None:
        self.client = CommandClient(dep.settings(), "orders", wait=False)
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.02):
            n = self.sent
            if n % 10 == 9:
                self.client.send(f"missing-{n}", ConfirmOrder())
            else:
                self.client.send(f"order-{uuid.uuid4().hex[:8]}", PlaceOrder(f"c-{n % 50}"))
            self.sent += 1
            if n % 20 == 0:
                self.client.flush()

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.client.flush()
        self.client.close()


def test_the_dashboard_draws_every_chart_and_agrees_with_the_metrics(
    deployment: Deployment, tmp_path: Path
) -> None:
    screenshot = Path(os.environ.get("DASHBOARD_SCREENSHOT", tmp_path / "dashboard.png"))
    node = subprocess.Popen(
        [
            "node",
            "dashboard_page.mjs",
            deployment.url(),
            TOKEN,
            str(screenshot),
            os.environ.get("DASHBOARD_HOLD_S", "0"),
        ],
        cwd=HERE,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert node.stdin is not None and node.stdout is not None
    try:
        with Traffic(deployment) as traffic:
            first = node.stdout.readline()
            assert json.loads(first or "{}").get("stage") == "ready", first + (node.stdout.read() or "")
        wait_until(
            lambda: (lambda m: m["accepted"] + m["rejected"] >= traffic.sent)(scrape(deployment)),
            "every command handled",
            timeout=60,
        )
        node.stdin.write("go\n")
        node.stdin.flush()
        out, _ = node.communicate(timeout=120)
    finally:
        if node.poll() is None:
            node.kill()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"], result
    metrics = scrape(deployment)
    assert (result["accepted"], result["rejected"], result["events"]) == (
        metrics["accepted"],
        metrics["rejected"],
        metrics["events"],
    )
    assert result["rejected"] > 0 and result["accepted"] > result["rejected"]
    assert all(points > 0 for points in result["points"].values()), result["points"]
    assert any(s.startswith("rejected") for s in result["series"]["commands"]), result["series"]
    assert any("order-summary" in s for s in result["series"]["views"]), result["series"]
    assert any(f"{deployment.prefix}" in s for s in result["series"]["lag"]), result["series"]
    assert "dash-w1" in result["worker"]
    assert result["external"] == []  # nothing loaded from elsewhere
    assert result["token_stored"] and "access_token" not in result["address_after"]
    assert screenshot.stat().st_size > 10_000
