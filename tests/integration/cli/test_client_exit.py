"""A process that exits right after sending delivers its commands: the client's producer is
flushed before it is destroyed, even when the client is never closed (librdkafka otherwise
logs `Producer terminating with 1 message … still in queue` and the command is lost)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from streams.client import read_topic
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment

pytestmark = pytest.mark.integration

SEND_AND_EXIT = """
from streams.client import CommandClient
from streams.config import Settings
from streams.contexts.orders import PlaceOrder

client = CommandClient(Settings(), "orders", wait=False)
client.send("o-exit", PlaceOrder("c-1", "EUR"), command_id="{command_id}")
"""


def test_a_client_never_closed_still_delivers_its_command(stack: StackEndpoints, tmp_path: Path) -> None:
    dep = Deployment(prefix=f"x{uuid.uuid4().hex[:8]}", data_dir=tmp_path)
    command_id = str(uuid.uuid4())
    done = subprocess.run(
        [sys.executable, "-c", SEND_AND_EXIT.format(command_id=command_id)],
        env=dep.cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "still in queue" not in done.stderr, done.stderr
    topic = f"{dep.prefix}.orders.commands"
    ids = [dict(m.headers() or []).get("command_id") for m in read_topic(dep.settings(), topic)]
    assert command_id.encode() in ids
