"""The live page watching one site of the devices fleet, in real headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
TOKEN = "browser-token"


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    if not Path("/usr/bin/chromium").exists() or shutil.which("node") is None:
        pytest.fail("needs /usr/bin/chromium and node (.ci/run installs them)")
    if not (HERE / "node_modules" / "playwright-core").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)
    dep = Deployment(
        prefix=f"bs{uuid.uuid4().hex[:8]}",
        data_dir=tmp_path_factory.mktemp("worker"),
        extra_env={
            "STREAMS_AUTH_TOKEN": TOKEN,
            "STREAMS_SECRET": "test-secret",
            "STREAMS_SINKS": "0",
            "STREAMS_CONTEXTS": "orders,devices",
        },
    )
    dep.start("w1")
    dep.wait_healthy("w1")
    yield dep
    dep.stop_all()


def test_the_live_page_watches_a_site(deployment: Deployment) -> None:
    site = f"site-{uuid.uuid4().hex[:6]}"
    devices = [f"{site}-dev-{i}" for i in range(3)]
    run = subprocess.run(
        ["node", "site_page.mjs", deployment.url(), TOKEN, site, *devices],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert "RecordTelemetryWindow" in result["commandTypes"] and "PlaceOrder" not in result["commandTypes"]
    assert [c.split()[:2] for c in result["commands"]] == [["200", "accepted"]] * 3
    summary = result["readmodel"]
    assert (summary["site"], summary["total"], summary["online"]) == (site, 3, 3)
    assert sorted(summary["devices"]) == sorted(devices)
    assert result["rows"] == [f"rm-{site}"] and result["events"] == 0  # only the watched site
