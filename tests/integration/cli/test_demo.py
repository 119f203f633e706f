"""`make demo` keeps working: the demo runs its own worker and checks every outcome it shows
(orders, a game round settled by the settlement process, the devices fleet)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import StackEndpoints
from tests.integration.workers import free_port

pytestmark = pytest.mark.integration


def test_the_demo_runs_end_to_end_on_a_fresh_data_dir(stack: StackEndpoints, tmp_path: Path) -> None:
    prefix = f"demo{uuid.uuid4().hex[:8]}"
    env = dict(os.environ)
    env.update(
        STREAMS_TOPIC_PREFIX=f"{prefix}.",
        STREAMS_APP_ID=prefix,
        STREAMS_WEB_PORT=str(free_port()),
        STREAMS_DATA_DIR=str(tmp_path / "not" / "yet" / "there"),
        COLUMNS="160",  # rich wraps at 80 columns without a terminal: keep the lines checked below whole
    )
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "demo ok" in done.stdout
    assert "RocksDB" in done.stdout and "order-summary" in done.stdout
    # the game round: funded, bet, closed, a wrong reveal rejected, settled, every wallet paid once
    assert "a settlement with another reveal: rejected (reveal_mismatch)" in done.stdout
    assert "sha256(reveal) = commitment: yes" in done.stdout
    assert "the settlement: wallet balances" in done.stdout
    assert "every wallet as expected, each paid once: yes" in done.stdout
