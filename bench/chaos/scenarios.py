"""The faults, one at a time, and what each cost: when the cluster was whole again and how long
commands took meanwhile (from the probes of `bench.chaos.load`)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.chaos.cluster import Cluster
from bench.chaos.fault import HOLD_S, Fault, Target
from bench.chaos.load import Load, Probe
from bench.chaos.outages import stale_replica, two_nodes_down, worker_killed_while_broker_down

PAUSE_S = float(os.environ.get("CHAOS_PAUSE_S", "30"))  # SIGSTOP for this long (20-40 s)
SETTLE_S = float(os.environ.get("CHAOS_SETTLE_S", "10"))  # steady load after each scenario
SLOW_S = 1.0  # a probe slower than this was held up by the fault


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
    details: dict[str, Any] = field(default_factory=dict)
    """What the scenario observed on the way (`Fault.details`)."""
    problems: list[str] = field(default_factory=list)
    """What of that breaks a guarantee (`Fault.problems`): the run fails."""

    def row(self) -> dict[str, Any]:
        return asdict(self)


def outcome(
    name: str, fault: Fault | list[int], fault_at: float, healed_at: float, probes: list[Probe]
) -> Outcome:
    """The figures of a scenario from its probes (those still waiting at the fault or sent later)."""
    if not isinstance(fault, Fault):
        fault = Fault(fault)
    timed_out = [p for p in probes if p.latency_s is None]
    slow = [p for p in probes if p.latency_s is not None and p.latency_s > SLOW_S]
    done = [p.sent_at + p.latency_s - fault_at for p in slow if p.latency_s is not None]
    latencies = [p.latency_s for p in probes if p.latency_s is not None]
    return Outcome(
        scenario=name, nodes=fault.nodes, healed_s=round(healed_at - fault_at, 1),
        recovered_s=round(max(done, default=0.0), 1),
        max_latency_s=None if timed_out else round(max(latencies, default=0.0), 2),
        probes=len(probes), slow_probes=len(slow), timed_out_probes=len(timed_out),
        details=fault.details, problems=fault.problems,
    )  # fmt: skip


def kill_leader(cluster: Cluster, target: Target, _load: Load) -> Fault:
    """1. kill -9 the leader of events partition 0; restart it after HOLD_S."""
    node = cluster.leader(target.events_topic, 0)
    cluster.kill(node)
    time.sleep(HOLD_S)
    cluster.up()
    return Fault([node])


def kill_coordinator(cluster: Cluster, target: Target, _load: Load) -> Fault:
    """2. kill -9 the transaction coordinator of the worker's transactional id; restart it after
    HOLD_S."""
    node = cluster.coordinator(target.transactional_id)
    cluster.kill(node)
    time.sleep(HOLD_S)
    cluster.up()
    return Fault([node])


def pause_broker(cluster: Cluster, target: Target, _load: Load) -> Fault:
    """3. SIGSTOP the leader of events partition 1 for PAUSE_S (a GC pause, a network stall),
    then SIGCONT."""
    node = cluster.leader(target.events_topic, 1)
    cluster.signal(node, signal.SIGSTOP)
    try:
        time.sleep(PAUSE_S)
    finally:
        cluster.signal(node, signal.SIGCONT)
    return Fault([node])


def rolling_restart(cluster: Cluster, target: Target, _load: Load) -> Fault:
    """5. A clean rolling restart: each node stopped (SIGTERM), started, and back in sync before
    the next."""
    nodes = list(range(1, cluster.config.brokers + 1))
    for node in nodes:
        cluster.stop(node)
        cluster.up()
        cluster.wait_in_sync()
    return Fault(nodes)


SCENARIOS: dict[str, Callable[[Cluster, Target, Load], Fault]] = {
    "leader": kill_leader,
    "coordinator": kill_coordinator,
    "pause": pause_broker,
    "worker": worker_killed_while_broker_down,
    "rolling": rolling_restart,
    "two-down": two_nodes_down,
    "stale": stale_replica,
}
"""The scenarios by name, in the issue's order (1-7)."""


def run(name: str, cluster: Cluster, target: Target, load: Load) -> Outcome:
    """Inject scenario `name`'s fault under the load, wait until the cluster is whole again and
    the load has run SETTLE_S more; its figures."""
    cluster.wait_in_sync()
    fault_at = time.monotonic()
    fault = SCENARIOS[name](cluster, target, load)
    cluster.wait_in_sync()
    healed_at = time.monotonic()
    time.sleep(SETTLE_S)
    # the probes still waiting for a result when the settling ends are awaited too
    deadline = time.monotonic() + load.probe_timeout_s
    while load.probes and load.probes[-1].sent_at < time.monotonic() - 5 and time.monotonic() < deadline:
        time.sleep(0.5)
    return outcome(name, fault, fault_at, healed_at, load.window(fault_at))
