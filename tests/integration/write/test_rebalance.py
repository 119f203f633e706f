"""Two workers share the partitions; when one leaves, its partitions and their state move."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import pytest

from streams.client import CommandClient
from streams.contexts.orders import AddItem, PlaceOrder
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment, wait_until

pytestmark = pytest.mark.integration


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

            def shared() -> tuple[set[int], set[int]] | None:
                w1, w2 = dep.assigned("w1"), dep.assigned("w2")
                return (w1, w2) if w1 and w2 and w1 | w2 == {0, 1, 2, 3} else None

            # generous: a loaded 2-core CI machine rebalances slowly
            w1, w2 = wait_until(shared, "both workers assigned", timeout=120, every=0.5)
            assert not (w1 & w2), (w1, w2)

            dep.kill("w2", signal.SIGTERM)  # leaves the group: its partitions move to w1
            for aggregate_id in ids:
                result = client.execute(aggregate_id, AddItem("a", 1, 10), timeout=120)
                # version 2 everywhere: w1 restored w2's partitions from the changelog
                assert result.accepted and result.aggregate_version == 2, result
            assert dep.assigned("w1") == {0, 1, 2, 3}, dep.log_tail("w1")
    finally:
        dep.stop_all()
