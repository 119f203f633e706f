"""The scenarios with more than one thing down at once (4, 6 and 7 of the issue), and the pure
judgement of what each observed.

A node that must stay down while another restarts is frozen (SIGSTOP) rather than killed:
`ops/stack.sh up` starts every node that is not running, and reports healthy only once the
metadata lists all of them, so the restart runs in a thread of its own (`Restart`) and completes
when the frozen node is let go (SIGCONT)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time

from bench.chaos.cluster import Cluster
from bench.chaos.fault import HOLD_S, Fault, Target
from bench.chaos.load import Load, Probe

RESUME_WITHIN_S = 180.0  # work must resume this long after a node returns (the probe timeout)
WATCH_S = 30.0  # how long a stale replica is watched for becoming leader
WRITES = 100  # records acknowledged before the stale replica is brought back


class Restart:
    """`cluster.up()` in a thread: it returns once every node runs and is listed again."""

    def __init__(self, cluster: Cluster) -> None:
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._run, args=(cluster,), name="restart", daemon=True)
        self._thread.start()

    def _run(self, cluster: Cluster) -> None:
        try:
            cluster.up()
        except Exception as exc:  # reported by the scenario
            self.error = exc

    def join(self, timeout: float = 600.0) -> None:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error


def first_result_after(probes: list[Probe], since: float) -> float | None:
    """When the first probe result after `since` (monotonic) arrived (None: none yet)."""
    done = [p.sent_at + p.latency_s for p in probes if p.latency_s is not None]
    later = [t for t in done if t > since]
    return min(later, default=None)


def wait_for_result(load: Load, since: float, timeout: float) -> float | None:
    """Seconds from `since` until the first probe result after it (None: none within `timeout`)."""
    deadline = since + timeout
    while time.monotonic() < deadline:
        found = first_result_after(load.probes, since)
        if found is not None:
            return round(found - since, 1)
        time.sleep(0.5)
    return None


def outage_problems(
    acknowledged: int, write_error: str | None, results_while_down: int, resumed_s: float | None
) -> list[str]:
    """What breaks scenario 6's guarantees: a write acknowledged, or a command answered, with two
    of three nodes down (one copy is not enough: `min.insync.replicas=2`); writes refused without
    an error; work that did not resume once one node was back."""
    problems = []
    if acknowledged:
        problems.append(f"{acknowledged} writes acknowledged with two of three nodes down")
    if not acknowledged and write_error is None:
        problems.append("writes with two of three nodes down failed without an error")
    if results_while_down:
        problems.append(f"{results_while_down} commands answered with two of three nodes down")
    if resumed_s is None:
        problems.append(f"no command answered within {RESUME_WITHIN_S:.0f}s of a node's return")
    return problems


def stale_leader_problems(leaders: list[int], stale: int, acknowledged: int, read_back: int) -> list[str]:
    """What breaks scenario 7's guarantees: the stale replica led the partition (an unclean
    election), or acknowledged records are missing once the partition's last in-sync replica
    is back."""
    problems = []
    if not acknowledged:
        problems.append("no record was acknowledged before the leader went: nothing was tested")
    if stale in leaders:
        problems.append(f"the stale replica (node {stale}) became leader: unclean election")
    if read_back < acknowledged:
        problems.append(f"{acknowledged - read_back} of {acknowledged} acknowledged records lost")
    return problems


def worker_killed_while_broker_down(cluster: Cluster, target: Target, load: Load) -> Fault:
    """4. kill -9 the leader of events partition 1, then, with it down and commands flowing (the
    worker commits a transaction every few milliseconds), kill -9 the worker; the worker is
    restarted at once, the node after HOLD_S. The next producer of the transactional id fences
    and aborts what the killed one left open."""
    assert target.worker is not None, "scenario 4 needs the worker"
    node = cluster.leader(target.events_topic, 1)
    cluster.kill(node)
    down_at = time.monotonic()
    time.sleep(2.0)  # the worker meets the loss mid-transaction
    target.worker.kill()
    target.worker.start()
    worker_back_s = round(time.monotonic() - down_at, 1)
    time.sleep(max(0.0, HOLD_S - (time.monotonic() - down_at)))
    cluster.up()
    return Fault([node], details={"worker_back_s": worker_back_s})


def two_nodes_down(cluster: Cluster, target: Target, load: Load) -> Fault:
    """6. Two of three nodes down: kill -9 the leader of events partition 0 and freeze (SIGSTOP)
    a second node. A write (acks=all) to a partition led by the third node must fail with an
    error and no command may be answered; once the killed node is back (the other still frozen)
    commands must be answered again; then the frozen node is let go."""
    nodes = list(range(1, cluster.config.brokers + 1))
    killed = cluster.leader(target.events_topic, 0)
    frozen = next(n for n in nodes if n != killed)
    survivor = next(n for n in nodes if n not in (killed, frozen))
    topic = target.scratch_topic(f"writes-{int(time.time())}")
    cluster.create_topic(topic, [survivor, killed, frozen], {})
    cluster.kill(killed)
    cluster.signal(frozen, signal.SIGSTOP)
    down_at = time.monotonic()
    try:
        acknowledged, write_error = cluster.write(topic, [b"two-down"], timeout_s=HOLD_S)
        grace = down_at + 10.0  # a commit already on its way when the nodes went
        returned_at = time.monotonic()
        results_while_down = sum(
            1
            for p in load.probes
            if p.latency_s is not None and grace < p.sent_at + p.latency_s < returned_at
        )
        restart = Restart(cluster)  # the killed node; the frozen one keeps its process
        resumed_s = wait_for_result(load, returned_at, RESUME_WITHIN_S)
    finally:
        cluster.signal(frozen, signal.SIGCONT)
    restart.join()
    details = {
        "write_error": write_error, "acknowledged_while_down": acknowledged,
        "results_while_down": results_while_down, "resumed_after_return_s": resumed_s,
        "frozen": frozen,
    }  # fmt: skip
    return Fault(
        [killed, frozen], details, outage_problems(acknowledged, write_error, results_while_down, resumed_s)
    )


def stale_replica(cluster: Cluster, target: Target, load: Load) -> Fault:
    """7. Unclean leader election stays off. A partition on two nodes (min.insync.replicas=1):
    its follower is killed and records are written to the leader alone; the leader is frozen
    and the stale follower restarted. The stale replica must not become leader while the leader
    is away (watched for WATCH_S); once the leader is let go, every acknowledged record is there."""
    nodes = list(range(1, cluster.config.brokers + 1))
    leader = cluster.leader(target.events_topic, 2)
    stale = next(n for n in nodes if n != leader)
    topic = target.scratch_topic(f"stale-{int(time.time())}")
    cluster.create_topic(topic, [leader, stale], {"min.insync.replicas": "1"})
    cluster.kill(stale)
    deadline = time.monotonic() + 120
    while cluster.isr(topic, 0) != [leader] and time.monotonic() < deadline:
        time.sleep(0.5)  # the controller drops the dead follower from the ISR
    acknowledged, write_error = cluster.write(topic, [b"%d" % i for i in range(WRITES)], timeout_s=30)
    cluster.signal(leader, signal.SIGSTOP)
    leaders: list[int] = []
    try:
        restart = Restart(cluster)
        deadline = time.monotonic() + 300
        while stale not in cluster.brokers() and time.monotonic() < deadline:
            time.sleep(1.0)  # the stale node is back in the cluster
        watch_until = time.monotonic() + WATCH_S
        while time.monotonic() < watch_until:
            with contextlib.suppress(Exception):  # metadata unavailable for a moment
                leaders.append(cluster.leader(topic, 0))
            time.sleep(1.0)
    finally:
        cluster.signal(leader, signal.SIGCONT)
    restart.join()
    read_back = len(cluster.read(topic))
    details = {
        "stale": stale, "leaders_seen": sorted(set(leaders)), "acknowledged": acknowledged,
        "write_error": write_error, "read_back": read_back,
    }  # fmt: skip
    return Fault([stale, leader], details, stale_leader_problems(leaders, stale, acknowledged, read_back))
