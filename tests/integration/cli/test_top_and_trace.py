"""`streams top --once` and `streams trace` against a running worker (orders), whose API asks
for a bearer token."""

from __future__ import annotations

import subprocess
import sys

import pytest

from streams.client import CommandClient
from streams.contexts.orders import PlaceOrder
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
