"""A paused worker (SIGSTOP: a long GC pause, a frozen VM) comes back as a zombie.

While it is stopped its session times out, the group moves its partitions to the other worker,
and the commands it had in flight are decided there. When it resumes, its transactional id is
fenced (KIP-447: the group generation its transaction names is gone, and the coordinator has
aborted the transaction it left open): whatever it wrote after the pause never becomes visible.
A read_committed reader finds every command's events exactly once.

The worker taking over waits for the group's offsets to be stable before it restores the write
state (`TransactionalSession.committed`): the zombie's open transaction ends first (committed by
the zombie when it resumes, or aborted by the coordinator after the transaction timeout). Without
that wait it restored the changelog up to the open transaction, then read the commands after the
zombie's late commit: 4 runs in 5 rejected 340-500 commands `order_not_found` or gave one aggregate
version twice.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from streams.client import CommandClient, read_topic
from streams.contexts.orders import AddItem, PlaceOrder
from streams.wire import headers as h
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.fault]

PARTITIONS = {0, 1, 2, 3}
AGGREGATES, COMMANDS_PER_AGGREGATE = 100, 20
FENCED = re.compile(
    r"(TXNERR|orders: batch aborted).*"
    r"(UNKNOWN_MEMBER_ID|ILLEGAL_GENERATION|FENCED_INSTANCE_ID|INVALID_PRODUCER_EPOCH|PRODUCER_FENCED|_FENCED)"
)
"""What the zombie's write stage logs when the broker refuses its transaction: the group generation
its offsets name is gone (KIP-447), or its producer epoch was bumped."""


def test_a_paused_worker_is_fenced_when_it_resumes_and_nothing_it_wrote_meanwhile_shows(
    stack: StackEndpoints, tmp_path: Path
) -> None:
    dep = Deployment(prefix=f"zmb{uuid.uuid4().hex[:8]}", data_dir=tmp_path, partitions=len(PARTITIONS))
    dep.start("w1")
    dep.start("w2")
    dep.wait_healthy("w1")
    dep.wait_healthy("w2")
    settings = dep.settings()
    client = CommandClient(settings, "orders", wait=False)
    sent: list[str] = []
    try:
        wait_until(
            lambda: (
                dep.assigned("w1")
                and dep.assigned("w2")
                and dep.assigned("w1") | dep.assigned("w2") == PARTITIONS
            ),
            "both workers assigned",
            every=0.5,
        )

        def produce() -> None:  # as fast as it goes, in order per aggregate, on over the pause
            for step in range(COMMANDS_PER_AGGREGATE):
                for a in range(AGGREGATES):
                    command = PlaceOrder("c", "EUR") if step == 0 else AddItem("sku", 1, 10)
                    sent.append(client.send(f"z-{a}", command)[0])
                client.flush()

        producer = threading.Thread(target=produce)
        producer.start()
        # mid-load: w1 works through a backlog, batch after batch, most likely inside a transaction
        total = AGGREGATES * COMMANDS_PER_AGGREGATE
        wait_until(lambda: len(sent) >= total // 2, "commands flowing", every=0.01)
        zombie = dep.workers["w1"]
        os.killpg(zombie.pid, signal.SIGSTOP)
        paused_log = (tmp_path / "w1.log").stat().st_size
        try:
            # the session times out (10 s): w2 takes every partition and decides w1's commands
            wait_until(lambda: dep.assigned("w2") == PARTITIONS, "w2 owning every partition", every=0.5)
        finally:
            os.killpg(zombie.pid, signal.SIGCONT)
        producer.join()
        assert len(set(sent)) == total

        def every_result() -> int:
            decided = {m.key() for m in read_topic(settings, client.runtime.topics.results, idle_timeout=1.0)}
            return len(decided) == total and len(decided)

        wait_until(every_result, "a result for every command", timeout=240, every=2)
        # the zombie noticed: the broker refused the transaction it had open (fenced), or, caught
        # between two batches, it learnt that its partitions had gone before writing anything
        resumed = (tmp_path / "w1.log").read_bytes()[paused_log:].decode(errors="replace")
        fenced = FENCED.search(resumed)
        assert fenced or "orders: revoked" in resumed, dep.log_tail("w1", 80)
        command_ids: Counter[str] = Counter()
        versions: dict[str, list[int]] = defaultdict(list)
        for msg in read_topic(settings, client.runtime.topics.events, idle_timeout=3.0):
            meta = h.as_dict(msg.headers())
            command_ids[meta[h.COMMAND_ID]] += 1
            versions[msg.key().decode()].append(int(meta[h.AGGREGATE_VERSION]))
        duplicated = {c: n for c, n in command_ids.items() if n > 1}
        assert not duplicated, f"events appended twice: {list(duplicated.items())[:5]}"
        missing = set(sent) - set(command_ids)
        if missing:  # say what their results were, for a failure that cannot be rerun
            why = Counter(
                (result.reason, result.aggregate_id, result.aggregate_version)
                for m in read_topic(settings, client.runtime.topics.results, idle_timeout=1.0)
                if m.key().decode() in missing
                for result in [client.runtime.codec.decode(m.value()).message]
            )
            raise AssertionError(f"{len(missing)} commands without events: {why.most_common(8)}")
        gaps = {a: v for a, v in versions.items() if v != list(range(1, len(v) + 1))}
        assert not gaps, f"version gaps: {list(gaps.items())[:3]}"
        assert sum(command_ids.values()) == total
        results = Counter(
            m.key() for m in read_topic(settings, client.runtime.topics.results, idle_timeout=1.0)
        )
        assert set(results.values()) == {1}, [k for k, n in results.items() if n > 1][:5]
        outcome = f"its transaction fenced ({fenced.group(2)})" if fenced else "its partitions revoked"
        print(f"\nzombie: w1 resumed and found {outcome}")
    finally:
        client.close()
        dep.stop_all()
