"""`ops/prometheus/local.sh` starts Debian's Prometheus against a worker: it scrapes /metrics with
the bearer token and evaluates the recording rules (a stand-in serves a worker's metrics text,
so no Kafka is needed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.workers import free_port, wait_until

SCRIPT = Path(__file__).resolve().parents[2] / "ops" / "prometheus" / "local.sh"
TOKEN = "prom-token"
METRICS = """\
# TYPE streams_consumer_lag_records gauge
streams_consumer_lag_records{group="app.p.orders.summary",topic="p.orders.events",partition="0"} 7.0
streams_consumer_lag_records{group="app.p.orders.summary",topic="p.orders.events",partition="1"} 5.0
# TYPE streams_commands_total counter
streams_commands_total{context="orders",command_type="PlaceOrder",status="accepted",reason=""} 42.0
"""


class FakeWorker(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/metrics" or self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_response(401)
            self.end_headers()
            return
        body = METRICS.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def worker() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeWorker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(expr)}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return list(json.loads(response.read())["data"]["result"])
    except OSError:
        return []


def console_with_data(port: int) -> str | None:
    """The console page once it shows the worker scraped and its accepted commands."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/consoles/streams.html", timeout=5) as response:
        page = response.read().decode()
    found = dict(re.findall(r'<td id="(\w+)">([^<]*)</td>', page))
    return page if found.get("workers") == "1" and found.get("accepted") == "42" else None


def test_local_prometheus_scrapes_with_the_token_and_records(worker: str, tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        pytest.fail("needs Debian's prometheus: `make test` installs it (bash ops/prereqs.sh test)")
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_PORT": str(port),
        "PROMETHEUS_DIR": str(tmp_path),
        "STREAMS_AUTH_TOKEN": TOKEN,
    }
    process = subprocess.Popen(["bash", str(SCRIPT), worker], env=env, stderr=subprocess.PIPE, text=True)
    try:
        up = wait_until(lambda: query(port, "up == 1"), "the worker scraped", timeout=60)
        assert up[0]["metric"]["instance"] == worker
        recorded = wait_until(
            lambda: query(port, "streams:consumer_lag_records:sum"),
            "the recording rule evaluated",
            timeout=60,
        )
        assert recorded[0]["metric"]["group"] == "app.p.orders.summary" and recorded[0]["value"][1] == "12"
        assert (tmp_path / "token").stat().st_mode & 0o077 == 0
        # the console page renders, with the scraped figures, and the scripts it loads are served
        page = wait_until(lambda: console_with_data(port), "the console page with its figures", timeout=60)
        assert "new PromConsole.Graph" in page and page.count('{"title": ') == 12
        for script in re.findall(r'src="([^"]+)"', page):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{script}", timeout=5) as response:
                assert response.status == 200, script
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
