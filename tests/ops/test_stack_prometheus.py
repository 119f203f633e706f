"""The local stack's optional Prometheus (`ops/stack.sh up prometheus`, or STACK_PROMETHEUS=1):
Debian's package, started, scraping the workers it is told about with the project's rules and
console page, and stopped by `down`. Its own data directory and port: nothing else of a stack is
started."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.integration.workers import wait_until

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stack(tmp_path: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ, "STREAMS_STACK_DATA": str(tmp_path), "PROMETHEUS_PORT": str(port),
        "STACK_PROMETHEUS_TARGETS": "127.0.0.1:7001 127.0.0.1:7002",
    }  # fmt: skip
    return subprocess.run(
        ["bash", str(ROOT / "ops" / "stack.sh"), *args], env=env, capture_output=True, text=True, timeout=180
    )


def test_the_optional_prometheus_starts_scrapes_the_named_workers_and_stops(tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        pytest.fail("needs Debian's prometheus: `make test` installs it (bash ops/prereqs.sh test)")
    port = free_port()
    up = stack(tmp_path, port, "up", "prometheus")
    try:
        assert up.returncode == 0, up.stderr
        assert "prometheus: healthy" in up.stderr

        def targets() -> str | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/targets", timeout=10) as answer:
                listed = answer.read().decode()
            return listed if "127.0.0.1:7001" in listed and "127.0.0.1:7002" in listed else None

        wait_until(targets, "both workers among Prometheus' targets", 60)  # applied after start
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/rules", timeout=10) as answer:
            assert "StreamsDeadLetters" in answer.read().decode()  # the project's rules are loaded
        assert stack(tmp_path, port, "status", "prometheus").returncode == 0
    finally:
        down = stack(tmp_path, port, "down", "prometheus")
    assert down.returncode == 0, down.stderr
    assert stack(tmp_path, port, "status", "prometheus").returncode == 1


def test_an_unknown_service_is_refused_and_names_the_optional_ones(tmp_path: Path) -> None:
    refused = stack(tmp_path, free_port(), "up", "grafana")
    assert refused.returncode == 1
    assert "unknown service 'grafana'" in refused.stderr and "optional: prometheus" in refused.stderr
