"""The faults, one at a time, and what each cost: when the cluster was whole again and how long
commands took meanwhile (from the probes of `bench.chaos.load`)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from bench.chaos.cluster import Cluster
from bench.chaos.load import Load, Probe

HOLD_S = float(os.environ.get("CHAOS_HOLD_S", "15"))  # a killed node stays down this long
PAUSE_S = float(os.environ.get("CHAOS_PAUSE_S", "30"))  # SIGSTOP for this long (20-40 s)
SETTLE_S = float(os.environ.get("CHAOS_SETTLE_S", "10"))  # steady load after each scenario
SLOW_S = 1.0  # a probe slower than this was held up by the fault


@dataclass(frozen=True)
class Target:
    """What a scenario may aim at: the events topic and the worker's transactional id."""

    events_topic: str
    transactional_id: str


@dataclass
class Outcome:
    """One scenario's figures (seconds from the fault)."""

    scenario: str
    nodes: list[int]
    healed_s: float
    """Until every node ran and every replica was back in sync."""
    recovered_s: float
    """Until the last command held up by the fault (probe latency > 1 s) had its result."""
    max_latency_s: float | None
    """The slowest probe command of the scenario (None: one got no result in time)."""
    probes: int
    slow_probes: int
    timed_out_probes: int

    def row(self) -> dict[str, Any]:
        return asdict(self)


def outcome(name: str, nodes: list[int], fault_at: float, healed_at: float, probes: list[Probe]) -> Outcome:
    """The figures of a scenario from its probes (those still waiting at the fault or sent later)."""
    timed_out = [p for p in probes if p.latency_s is None]
    slow = [p for p in probes if p.latency_s is not None and p.latency_s > SLOW_S]
    done = [p.sent_at + p.latency_s - fault_at for p in slow if p.latency_s is not None]
    latencies = [p.latency_s for p in probes if p.latency_s is not None]
    return Outcome(
        scenario=name, nodes=nodes, healed_s=round(healed_at - fault_at, 1),
        recovered_s=round(max(done, default=0.0), 1),
        max_latency_s=None if timed_out else round(max(latencies, default=0.0), 2),
        probes=len(probes), slow_probes=len(slow), timed_out_probes=len(timed_out),
    )  # fmt: skip


def kill_leader(cluster: Cluster, target: Target) -> list[int]:
    """1. kill -9 the leader of events partition 0; restart it after HOLD_S."""
    node = cluster.leader(target.events_topic, 0)
    cluster.kill(node)
    time.sleep(HOLD_S)
    cluster.up()
    return [node]


def kill_coordinator(cluster: Cluster, target: Target) -> list[int]:
    """2. kill -9 the transaction coordinator of the worker's transactional id; restart it after
    HOLD_S."""
    node = cluster.coordinator(target.transactional_id)
    cluster.kill(node)
    time.sleep(HOLD_S)
    cluster.up()
    return [node]


def pause_broker(cluster: Cluster, target: Target) -> list[int]:
    """3. SIGSTOP the leader of events partition 1 for PAUSE_S (a GC pause, a network stall),
    then SIGCONT."""
    node = cluster.leader(target.events_topic, 1)
    cluster.signal(node, signal.SIGSTOP)
    try:
        time.sleep(PAUSE_S)
    finally:
        cluster.signal(node, signal.SIGCONT)
    return [node]


def rolling_restart(cluster: Cluster, target: Target) -> list[int]:
    """5. A clean rolling restart: each node stopped (SIGTERM), started, and back in sync before
    the next."""
    nodes = list(range(1, cluster.config.brokers + 1))
    for node in nodes:
        cluster.stop(node)
        cluster.up()
        cluster.wait_in_sync()
    return nodes


SCENARIOS: dict[str, Callable[[Cluster, Target], list[int]]] = {
    "leader": kill_leader,
    "coordinator": kill_coordinator,
    "pause": pause_broker,
    "rolling": rolling_restart,
}


def run(name: str, cluster: Cluster, target: Target, load: Load) -> Outcome:
    """Inject scenario `name`'s fault under the load, wait until the cluster is whole again and
    the load has run SETTLE_S more; its figures."""
    cluster.wait_in_sync()
    fault_at = time.monotonic()
    nodes = SCENARIOS[name](cluster, target)
    cluster.wait_in_sync()
    healed_at = time.monotonic()
    time.sleep(SETTLE_S)
    # the probes still waiting for a result when the settling ends are awaited too
    deadline = time.monotonic() + load.probe_timeout_s
    while load.probes and load.probes[-1].sent_at < time.monotonic() - 5 and time.monotonic() < deadline:
        time.sleep(0.5)
    return outcome(name, nodes, fault_at, healed_at, load.window(fault_at))
