"""`streams demo` only reuses a worker of its own deployment on STREAMS_WEB_PORT."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rich.console import Console

from streams.cli.demo import DEMO_CONTEXTS, _health, _start_worker
from streams.config import Settings


def _serve(body: bytes, status: int = 200) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def other_app() -> Iterator[int]:
    body = json.dumps({"status": "ok", "app": "someone-else", "topic_prefix": "", "contexts": ["orders"]})
    server = _serve(body.encode())
    yield server.server_address[1]
    server.shutdown()


def test_a_worker_of_another_app_on_the_port_stops_the_demo_with_advice(other_app: int) -> None:
    settings = replace(Settings(), web_port=other_app, app_id="streams")
    console = Console(record=True, width=200)
    with pytest.raises(SystemExit) as stopped:
        _start_worker(settings, console)
    assert stopped.value.code == 2
    said = console.export_text()
    assert "STREAMS_WEB_PORT" in said and "someone-else" in said


def test_something_that_is_not_a_worker_is_told_apart() -> None:
    server = _serve(b"<html>hello</html>")
    try:
        found = _health(replace(Settings(), web_port=server.server_address[1]))
    finally:
        server.shutdown()
    assert found.answered and not found.ours and "not a streams worker" in found.detail


def test_our_own_worker_is_recognised_ready_or_starting() -> None:
    for status, ready in ((200, True), (503, False)):
        body: dict[str, object] = {"status": "ok" if ready else "starting", "app": "mine"}
        body.update(topic_prefix="p.", contexts=list(DEMO_CONTEXTS))
        server = _serve(json.dumps(body).encode(), status)
        try:
            settings = replace(Settings(), web_port=server.server_address[1], app_id="mine")
            found = _health(replace(settings, topic_prefix="p."))
        finally:
            server.shutdown()
        assert found.ours and found.ready is ready


def test_our_worker_without_every_demo_context_is_not_reused() -> None:
    body = {"status": "ok", "app": "mine", "topic_prefix": "", "contexts": ["orders"]}
    server = _serve(json.dumps(body).encode())
    try:
        found = _health(replace(Settings(), web_port=server.server_address[1], app_id="mine"))
    finally:
        server.shutdown()
    assert found.answered and not found.ours and "devices" not in found.detail.split("contexts")[0]
