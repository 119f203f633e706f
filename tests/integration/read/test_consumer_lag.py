"""The consumer lag gauge (`streams_consumer_lag_records`, from librdkafka's statistics) on a
live worker: a view slowed down (tests/integration/gated_orders.py) while commands arrive shows
its lag rising in /metrics, and falling to 0 once it folds at full speed again; the write side's
lag, meanwhile, stays small."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.client import CommandClient
from streams.contexts.orders import PlaceOrder
from tests.integration.workers import Deployment, deployed, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gate") / "slow"


@pytest.fixture(scope="module")
def deployment(stack: object, tmp_path_factory: pytest.TempPathFactory, gate: Path) -> Iterator[Deployment]:
    env = {"STREAMS_CONTEXT_MODULES": "tests.integration.gated_orders", "STREAMS_TEST_GATE": str(gate)}
    with deployed(tmp_path_factory.mktemp("worker"), "lg", STREAMS_SINKS="0", **env) as dep:
        yield dep


def lags(dep: Deployment) -> dict[str, float]:
    """Lag summed over partitions, by consumer group, from the worker's /metrics."""
    with urllib.request.urlopen(f"{dep.url()}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "streams_consumer_lag_records":
                group = sample.labels["group"]
                out[group] = out.get(group, 0.0) + sample.value
    return out


def gated_lag(dep: Deployment) -> float | None:
    found = [v for group, v in lags(dep).items() if ".gated." in group or group.endswith(".gated")]
    return found[0] if found else None


def test_a_slowed_view_shows_its_lag_rise_then_fall(deployment: Deployment, gate: Path) -> None:
    with CommandClient(deployment.settings(), "orders") as client:
        client.execute("warm-up", PlaceOrder("c-0"), timeout=120)
        # the write side reports too
        wait_until(lambda: any(g.endswith(".handler") for g in lags(deployment)), "the write side's lag", 60)
        wait_until(lambda: gated_lag(deployment) == 0, "the gated view caught up", timeout=60)

        gate.touch()
        futures = [client.send(f"lag-{i}", PlaceOrder(f"c-{i}"))[1] for i in range(60)]
        client.flush()
        assert all(f is not None and f.result(timeout=60).accepted for f in futures)
        wait_until(lambda: (gated_lag(deployment) or 0) >= 20, "the gated view's lag rising", timeout=60)
        handler = sum(v for g, v in lags(deployment).items() if g.endswith(".handler"))
        assert handler < 20, lags(deployment)  # the write side kept up

        gate.unlink()
        wait_until(lambda: gated_lag(deployment) == 0, "the gated view's lag back to 0", timeout=60)
