"""`streams worker --processes 2` on the real stack: two members of the groups sharing the
partitions, each with its own RocksDB directory; a killed process is started again and the
commands keep being answered; SIGTERM stops them all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from streams.contexts.orders import AddItem, PlaceOrder
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment, free_port, wait_until, warmed_client

pytestmark = pytest.mark.integration


def _two_free_ports() -> int:
    for _ in range(50):
        port = free_port()
        try:
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports")


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def _commands_handled(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("streams_commands_total{")
    )


def test_two_processes_share_the_partitions_and_survive_a_kill(stack: StackEndpoints, tmp_path: Path) -> None:
    dep = Deployment(prefix=f"pw{uuid.uuid4().hex[:8]}", data_dir=tmp_path)
    port = _two_free_ports()
    env = dep.cli_env() | {"STREAMS_WEB_PORT": str(port), "STREAMS_WORKER_ID": "box"}
    log_path = tmp_path / "launcher.log"
    with open(log_path, "ab") as log:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--processes", "2"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_until(lambda: _healthy(port) and _healthy(port + 1), "both processes healthy", 240, every=0.3)
        with warmed_client(dep.settings()) as client:
            results = [client.execute(f"o-{i}", PlaceOrder(f"c-{i}", "EUR"), timeout=60) for i in range(40)]
            assert all(r.accepted for r in results)
            handled = {p: _commands_handled(p) for p in (port, port + 1)}
            assert all(handled.values()) and sum(handled.values()) >= 41, handled  # both processes work
            assert (tmp_path / "box-0").is_dir() and (tmp_path / "box-1").is_dir()  # RocksDB apart

            pid = int(re.findall(r"worker 0: pid (\d+)", log_path.read_text())[0])
            os.kill(pid, signal.SIGKILL)
            wait_until(
                lambda: "worker 0 exited" in log_path.read_text(), "the launcher saw the kill", 30, every=0.3
            )
            wait_until(
                lambda: len(re.findall(r"worker 0: pid", log_path.read_text())) == 2,
                "restarted",
                60,
                every=0.3,
            )
            wait_until(lambda: _healthy(port), "the restarted process healthy", 240, every=0.3)
            more = [client.execute(f"o-{i}", AddItem("sku-1", 1, 100), timeout=120) for i in range(40)]
            assert all(r.accepted and r.aggregate_version == 2 for r in more)
        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=90) == 0
        assert not _healthy(port) and not _healthy(port + 1)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
