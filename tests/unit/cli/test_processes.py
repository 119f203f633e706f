"""`streams worker --processes N`: each process distinct, a crashed one started again."""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from streams.cli.processes import LauncherError, ProcessSpec, process_specs, supervise
from streams.config import Settings


def test_each_process_gets_its_port_worker_id_and_advertised_url() -> None:
    settings = replace(Settings(), web_port=7000, worker_id="box", advertised_url="http://box:{port}")
    specs = process_specs(settings, 3, {"KEEP": "1"})
    assert [s.env["STREAMS_WEB_PORT"] for s in specs] == ["7000", "7001", "7002"]
    assert [s.env["STREAMS_WORKER_ID"] for s in specs] == ["box-0", "box-1", "box-2"]
    assert [s.env["STREAMS_ADVERTISED_URL"] for s in specs] == [f"http://box:{p}" for p in (7000, 7001, 7002)]
    assert all(s.env["KEEP"] == "1" for s in specs)


def test_without_a_worker_id_the_default_one_follows_the_port() -> None:
    specs = process_specs(replace(Settings(), web_port=7000, worker_id=""), 2, {})
    assert all("STREAMS_WORKER_ID" not in s.env for s in specs)  # host-port: distinct by port


def test_one_advertised_address_for_several_processes_is_refused() -> None:
    with pytest.raises(LauncherError, match=r"\{port\}"):
        process_specs(replace(Settings(), advertised_url="http://box:6066"), 2, {})
    with pytest.raises(LauncherError):
        process_specs(Settings(), 0, {})


def test_a_process_that_exits_is_restarted_and_a_signal_stops_them_all(tmp_path: Path) -> None:
    marker = tmp_path / "starts"
    script = (
        "import os, sys, time\n"
        f"open({str(marker)!r}, 'a').write(os.environ['STREAMS_WEB_PORT'] + '\\n')\n"
        "if os.environ['STREAMS_WEB_PORT'] == '1' and open("
        + repr(str(marker))
        + ").read().count('1\\n') < 2:\n"
        "    sys.exit(3)\n"
        "time.sleep(60)\n"
    )
    specs = [ProcessSpec(i, {"STREAMS_WEB_PORT": str(i)}) for i in range(2)]
    said: list[str] = []
    threading.Timer(3.5, lambda: signal.raise_signal(signal.SIGTERM)).start()
    started = time.monotonic()
    status = supervise(specs, [sys.executable, "-c", script], said.append, poll_s=0.1)
    assert status == 0
    assert time.monotonic() - started < 30
    assert sorted(marker.read_text().split()) == ["0", "1", "1"]  # worker 1 ran twice
    assert any("worker 1 exited with 3; restarting" in line for line in said), said
