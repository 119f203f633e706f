"""`streams top --once` and `streams trace` against a running worker (orders), whose API asks
for a bearer token."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from streams.client import CommandClient
from streams.contexts.orders import PlaceOrder
from tests.integration.web.realtime_kit import sse_read
from tests.integration.workers import Deployment, module_deployment, wait_until

pytestmark = pytest.mark.integration

TOKEN = "top-and-trace-token"
deployment = module_deployment("tt", STREAMS_AUTH_TOKEN=TOKEN, STREAMS_SECRET="ab" * 32)  # sinks on


def streams(deployment: Deployment, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `streams <args>` against the deployment (its environment, its token)."""
    env = deployment.cli_env()
    env["COLUMNS"] = "160"
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_top_once_prints_one_frame_of_the_workers_signals(deployment: Deployment) -> None:
    with CommandClient(deployment.settings(), "orders") as client:
        for i in range(5):
            assert client.execute(f"top-{i}", PlaceOrder(f"c-{i}"), timeout=120).accepted

    def frame() -> str | None:
        """One frame, once it shows the write side's lag per partition: the lag series come with
        the consumers' first statistics report (every 5 s), which may follow the commands."""
        done = streams(deployment, "top", "--once", "--interval", "1", "--url", deployment.url())
        assert done.returncode == 0, done.stderr
        return done.stdout if ".handler" in done.stdout else None

    stdout = wait_until(frame, "a frame of streams top with the write side's lag", timeout=60)
    for panel in ("Commands/s", "Command → result", "Events/s", "Consumer lag", "Dead letters/s",
                  "Aborts and rebalances", "commands accepted 5"):  # fmt: skip
        assert panel in stdout, stdout


def test_top_without_the_token_says_so(deployment: Deployment) -> None:
    done = streams(deployment, "top", "--once", "--url", deployment.url(), "--token", "wrong")
    assert done.returncode != 0
    assert "401" in done.stderr or "403" in done.stderr, done.stderr


def test_trace_shows_the_command_its_result_event_and_the_views_documents(deployment: Deployment) -> None:
    with CommandClient(deployment.settings(), "orders") as client:
        result = client.execute("trace-1", PlaceOrder("c-trace"), command_id="trace-cmd-1", timeout=120)
    assert result.accepted

    def traced() -> str | None:
        done = streams(deployment, "trace", "orders", "trace-cmd-1")
        # the views and the sink deriver publish after the command's result: wait for both
        found = done.returncode == 0 and "order-summary" in done.stdout and "sink record" in done.stdout
        return done.stdout if found else None

    out = wait_until(traced, "the trace reaches the order summary and the sink", timeout=120)
    lines = out.splitlines()
    for hop, where in (("command", ".commands["), ("result", ".command-results["), ("event", ".events["),
                       ("document", ".order-summary["), ("sink record", ".events-sink["),
                       ("sink row", "")):  # fmt: skip
        assert any(line.split("│")[1].strip() == hop and where in line for line in lines if "│" in line), out
    assert "PlaceOrder for trace-1" in out and "OrderPlaced v1" in out and "accepted, version 1" in out
    assert "correlation trace-cmd-1" in out


def test_trace_with_url_shows_the_realtime_frames_a_subscribed_client_got(deployment: Deployment) -> None:
    """An SSE client follows the aggregate's events and its order summary; the trace asks the
    worker's ring (`--url`) and shows each frame's hop, timed, with one subscriber reached, and
    says of the view no client follows that no client follows it."""
    url = f"{deployment.url()}/realtime/sse"
    params = {"context": "orders", "aggregate_id": "trace-rt", "views": "order-summary"}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(headers=auth, timeout=60) as http, http.stream("GET", url, params=params) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        assert sse_read(lines, 1)[0]["type"] == "subscribed"
        with CommandClient(deployment.settings(), "orders") as client:
            result = client.execute("trace-rt", PlaceOrder("c-rt"), command_id="trace-cmd-rt", timeout=120)
        assert result.accepted
        got = sse_read(lines, 2)  # the event and the document, both delivered to this client
        assert sorted(f["type"] for f in got) == ["event", "view"]

        def traced() -> str | None:
            done = streams(deployment, "trace", "orders", "trace-cmd-rt", "--url", deployment.url())
            assert done.returncode == 0, done.stderr
            shown.append(done.stdout)
            return done.stdout if done.stdout.count("frame to 1 subscriber on") == 2 else None

        shown: list[str] = []
        try:
            out = wait_until(traced, "the trace reaching the realtime frames", timeout=60)
        except AssertionError:
            raise AssertionError(shown[-1:]) from None
    rows = [[cell.strip() for cell in line.split("│")] for line in out.splitlines() if "│" in line]
    frames = {row[2].split("[")[0].split(".", 1)[1]: row for row in rows if row[1] == "realtime frame"}
    assert set(frames) == {"orders.events", "orders.order-summary", "orders.orders-by-customer"}, out
    for topic in ("orders.events", "orders.order-summary"):  # timed: at +ms and took ms
        row = frames[topic]
        assert "frame to 1 subscriber on" in row[3] and row[4].isdigit() and row[5].lstrip("-").isdigit(), out
    # the other view has no client on this worker: said so, untimed
    assert "no client follows this topic there" in frames["orders.orders-by-customer"][3], out
    assert frames["orders.orders-by-customer"][4] == "-", out
