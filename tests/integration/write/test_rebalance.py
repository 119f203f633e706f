"""Two workers share the partitions; when one leaves, its partitions and their state move."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import pytest

from streams.client import CommandClient
from streams.contexts.orders import AddItem, PlaceOrder
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment

pytestmark = pytest.mark.integration


def _assigned(dep: Deployment, worker_id: str) -> set[int]:
    """Partitions a worker last logged as assigned (the handler logs every assignment)."""
    latest: set[int] = set()
    for line in (dep.data_dir / f"{worker_id}.log").read_text(errors="replace").splitlines():
        if "orders: assigned" in line:
            latest = {int(p) for p in line.split("assigned", 1)[1].strip(" []").split(",") if p.strip()}
        if "orders: revoked" in line:
            revoked = {int(p) for p in line.split("revoked", 1)[1].strip(" []").split(",") if p.strip()}
            latest -= revoked
    return latest


def test_two_workers_share_partitions_and_state_follows_on_rebalance(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    dep = Deployment(prefix=f"reb{uuid.uuid4().hex[:8]}", data_dir=tmp_path, partitions=4)
    dep.start("w1")
    dep.start("w2")
    dep.wait_healthy("w1")
    dep.wait_healthy("w2")
    try:
        with CommandClient(dep.settings(), "orders") as client:
            ids = [f"o-{i}" for i in range(24)]
            for aggregate_id in ids:
                assert client.execute(aggregate_id, PlaceOrder("c", "EUR"), timeout=120).accepted
            deadline = time.monotonic() + 120  # generous: a loaded 2-core CI machine rebalances slowly
            while time.monotonic() < deadline:
                w1, w2 = _assigned(dep, "w1"), _assigned(dep, "w2")
                if w1 and w2 and w1 | w2 == {0, 1, 2, 3}:
                    break
                time.sleep(0.5)
            assert w1 and w2 and not (w1 & w2), (w1, w2)

            dep.kill("w2", signal.SIGTERM)  # leaves the group: its partitions move to w1
            for aggregate_id in ids:
                result = client.execute(aggregate_id, AddItem("a", 1, 10), timeout=120)
                # version 2 everywhere: w1 restored w2's partitions from the changelog
                assert result.accepted and result.aggregate_version == 2, result
            assert _assigned(dep, "w1") == {0, 1, 2, 3}, dep.log_tail("w1")
    finally:
        dep.stop_all()
