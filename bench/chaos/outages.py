"""The scenarios with more than one thing down at once (4, 6 and 7 of the issue), and the pure
judgement of what each observed.

A node that must return while another stays down is frozen (SIGSTOP) and let go (SIGCONT) rather
than killed and restarted: `ops/stack.sh up` starts every node that is not running, and a JVM's
start on a loaded machine takes minutes, while a frozen node is back within seconds."""

from __future__ import annotations

import contextlib
import signal
import time

from bench.chaos.cluster import Cluster
from bench.chaos.fault import HOLD_S, Fault, Target
from bench.chaos.load import Load, Probe

RESUME_WITHIN_S = 180.0  # work must resume this long after a node returns (the probe timeout)
WATCH_S = 30.0  # how long a stale replica is watched for becoming leader
WRITES = 100  # records acknowledged before the stale replica is brought back


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


def wait_for_leader(cluster: Cluster, topic: str, node: int, timeout: float) -> float | None:
    """Seconds until `node` leads partition 0 of `topic` again (None: not within `timeout`): a
    node let go after a freeze was fenced and must register again before it leads."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(Exception):  # metadata unavailable for a moment
            if cluster.leader(topic, 0) == node:
                return round(time.monotonic() - started, 1)
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
    a second node for HOLD_S. A write (acks=all) to a partition the third node leads must fail
    with an error, and no command may be answered; once the frozen node returns (SIGCONT), the
    other still down, a command must be answered within RESUME_WITHIN_S; then the killed node
    is restarted."""
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
    finally:
        cluster.signal(frozen, signal.SIGCONT)
    returned_at = time.monotonic()
    grace = down_at + 10.0  # a commit already on its way when the nodes went
    results_while_down = sum(
        1 for p in load.probes if p.latency_s is not None and grace < p.sent_at + p.latency_s < returned_at
    )
    resumed_s = wait_for_result(load, returned_at, RESUME_WITHIN_S)
    cluster.up()
    details = {
        "write_error": write_error, "acknowledged_while_down": acknowledged,
        "results_while_down": results_while_down, "down_s": round(returned_at - down_at, 1),
        "resumed_after_return_s": resumed_s, "frozen": frozen,
    }  # fmt: skip
    problems = outage_problems(acknowledged, write_error, results_while_down, resumed_s)
    return Fault([killed, frozen], details, problems)


def stale_replica(cluster: Cluster, target: Target, load: Load) -> Fault:
    """7. Unclean leader election stays off. A partition of its own on two nodes
    (min.insync.replicas=1): its follower is frozen (SIGSTOP) until the controller drops it from
    the in-sync replicas, and WRITES records are acknowledged by the leader alone; then the
    leader is frozen and the stale follower let go. The stale replica must not lead while the
    leader is away (watched for WATCH_S after it is back in the cluster); once the leader is let
    go too, every acknowledged record must be there."""
    nodes = list(range(1, cluster.config.brokers + 1))
    leader = cluster.leader(target.events_topic, 2)
    stale = next(n for n in nodes if n != leader)
    topic = target.scratch_topic(f"stale-{int(time.time())}")
    cluster.create_topic(topic, [leader, stale], {"min.insync.replicas": "1"})
    leaders: list[int] = []
    frozen = [stale]
    cluster.signal(stale, signal.SIGSTOP)
    frozen_at = time.monotonic()
    dropped_s: float | None = None
    try:
        while time.monotonic() < frozen_at + 120:  # the controller fences the silent follower
            with contextlib.suppress(Exception):  # a request sent to the frozen node times out
                if cluster.isr(topic, 0) == [leader]:
                    dropped_s = round(time.monotonic() - frozen_at, 1)
                    break
            time.sleep(0.5)
        acknowledged, write_error = cluster.write(topic, [b"%d" % i for i in range(WRITES)], timeout_s=30)
        cluster.signal(leader, signal.SIGSTOP)
        frozen.append(leader)
        cluster.signal(stale, signal.SIGCONT)
        frozen.remove(stale)
        deadline = time.monotonic() + 120
        while stale not in cluster.brokers() and time.monotonic() < deadline:
            time.sleep(1.0)  # the stale node is back in the cluster
        watch_until = time.monotonic() + WATCH_S
        while time.monotonic() < watch_until:
            with contextlib.suppress(Exception):  # metadata unavailable for a moment
                leaders.append(cluster.leader(topic, 0))
            time.sleep(1.0)
    finally:
        for node in frozen:
            cluster.signal(node, signal.SIGCONT)
    led_again_s = wait_for_leader(cluster, topic, leader, timeout=120.0)
    read_back = len(cluster.read(topic))
    details = {
        "stale": stale, "dropped_from_isr_s": dropped_s, "leaders_seen": sorted(set(leaders)),
        "acknowledged": acknowledged, "write_error": write_error, "leader_back_s": led_again_s,
        "read_back": read_back,
    }  # fmt: skip
    return Fault([stale, leader], details, stale_leader_problems(leaders, stale, acknowledged, read_back))
