"""Prometheus' console page (ops/prometheus/consoles/streams.html, served by ops/prometheus/local.sh)
in real headless Chromium: the panels whose series a stand-in worker serves draw their charts, with
legends from the series' labels, and every file the page loads is served."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.kit import HERE, require_browser
from tests.integration.workers import free_port, wait_until
from tests.ops.test_local_prometheus import SCRIPT, TOKEN, query, worker  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


@pytest.fixture
def prometheus(worker: str, tmp_path: Path) -> Iterator[int]:  # noqa: F811 - the imported fixture
    require_browser()
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_PORT": str(port),
        "PROMETHEUS_DIR": str(tmp_path),
        "STREAMS_AUTH_TOKEN": TOKEN,
    }
    process = subprocess.Popen(["bash", str(SCRIPT), worker], env=env, stderr=subprocess.DEVNULL)
    try:
        # rate() needs two samples of the counter (5 s apart)
        wait_until(lambda: query(port, "rate(streams_commands_total[1m])"), "two scrapes", timeout=90)
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def test_the_console_page_draws_the_panels_of_the_series_scraped(prometheus: int) -> None:
    lag, commands = (
        "Consumer lag (records) per partition, per stage",
        "Commands/s: accepted, rejected by reason",
    )
    done = subprocess.run(
        ["node", "console_page.mjs", f"http://127.0.0.1:{prometheus}/consoles/streams.html", lag, commands],
        cwd=HERE, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"], (result, done.stderr[-2000:])
    assert len(result["panels"]) == 12 and result["failed"] == []
    drawn = {p["title"]: p for p in result["panels"]}
    assert drawn[lag]["drawn"] and drawn[commands]["drawn"]
    assert "app.p.orders.summary p.orders.events partition 0" in drawn[lag]["legend"], drawn[lag]
    assert "accepted" in drawn[commands]["legend"], drawn[commands]
