"""Command ids are remembered for the idempotency window only: the store stays flat under a long
stream of distinct commands, expired ids are tombstoned in the changelog, and a restore after
expiry does not bring them back (docs/write-side.md)."""

from __future__ import annotations

import re
import shutil
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.client import CommandClient
from streams.contexts.orders import AddItem
from streams.kafka.store import PartitionStore
from streams.wire.changelog import COMMAND_PREFIX, EXPIRY_PREFIX
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment, deployed, wait_until

pytestmark = pytest.mark.integration

WINDOW_MS = 3000
RATE = 300  # commands per second
SECONDS = 15


@pytest.fixture(scope="module")
def deployment(stack: StackEndpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deployed(
        tmp_path_factory.mktemp("worker"), "i", STREAMS_IDEMPOTENCY_WINDOW_MS=str(WINDOW_MS)
    ) as dep:
        yield dep


def remembered(dep: Deployment) -> int:
    """The worker's `streams_idempotency_ids` for orders."""
    with urllib.request.urlopen(f"{dep.url()}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(r'^streams_idempotency_ids\{context="orders"\} (\S+)$', text, re.M)
    return int(float(found.group(1))) if found else -1


def store_keys(dep: Deployment, prefix: bytes) -> int:
    """Keys with `prefix` in the orders write stores of worker w1 (the worker must be stopped)."""
    total = 0
    for path in sorted((dep.data_dir / "w1" / f"{dep.prefix}.orders").glob("p*")):
        store = PartitionStore(path)
        try:
            total += sum(1 for _ in store.scan(prefix))
        finally:
            store.close()
    return total


def test_the_store_stays_flat_under_distinct_commands_and_a_restore_keeps_them_forgotten(
    deployment: Deployment, client: CommandClient
) -> None:
    first = client.execute("o-window", AddItem("widget", 1, 100), command_id="cmd-window-first")
    again = client.execute("o-window", AddItem("widget", 1, 100), command_id="cmd-window-first")
    assert again.duplicate and again.reason == first.reason  # inside the window: the first result

    samples: list[tuple[float, int]] = []
    started = time.monotonic()
    sent = 0
    with CommandClient(deployment.settings(), "orders", wait=False) as sender:
        while (elapsed := time.monotonic() - started) < SECONDS:
            while sent < elapsed * RATE:  # distinct ids, each remembered (rejected: no such order)
                sender.send(f"o-stream-{sent % 8}", AddItem("widget", 1, 100), command_id=f"cmd-s-{sent}")
                sent += 1
            sender.flush()
            samples.append((elapsed, remembered(deployment)))
            time.sleep(0.25)  # the load's pace and the sampling interval, not a wait
    steady = [n for t, n in samples if t > WINDOW_MS / 1000 + 3]
    bound = RATE * (WINDOW_MS / 1000 + 3)  # the window's commands plus the idle check's lag
    print(f"sent {sent} distinct commands; remembered ids after warm-up: {steady}")
    assert steady and max(steady) < bound < sent / 2, f"remembered {max(steady)}, bound {bound}, sent {sent}"
    assert steady[-1] < 2 * max(steady[: len(steady) // 2] or [bound])  # flat, not growing

    wait_until(lambda: remembered(deployment) == 0, "every id to leave the window", 30, every=0.2)
    resent = client.execute("o-window", AddItem("widget", 1, 100), command_id="cmd-window-first")
    assert not resent.duplicate  # after the window: a new command

    # restart from the changelog alone: the expired ids stay forgotten
    deployment.kill("w1", signal.SIGTERM)
    assert store_keys(deployment, COMMAND_PREFIX) == 1 and store_keys(deployment, EXPIRY_PREFIX) == 1
    shutil.rmtree(Path(deployment.data_dir) / "w1")
    deployment.start("w1")
    deployment.wait_healthy("w1")
    wait_until(lambda: remembered(deployment) >= 0, "the orders store to be restored", 60, every=0.2)
    assert remembered(deployment) <= 1
    late = client.execute("o-window", AddItem("widget", 1, 100), command_id="cmd-s-0", timeout=120)
    assert not late.duplicate  # expired before the restart, not resurrected by the restore
    deployment.kill("w1", signal.SIGTERM)
    assert store_keys(deployment, COMMAND_PREFIX) <= 2
