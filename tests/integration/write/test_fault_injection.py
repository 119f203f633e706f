"""Exactly once under kill -9: the worker dies at random moments while commands keep coming.

Afterwards a read_committed reader must find every command's events exactly once, versions
1..n per aggregate with no gap, and the state table equal to the fold of the log.
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from streams.client import CommandClient, read_topic
from streams.contexts.orders import AddItem, PlaceOrder
from streams.wire import headers as h
from streams.wire.changelog import AGGREGATE_PREFIX, decode_aggregate
from tests.conftest import StackEndpoints
from tests.integration.workers import Deployment, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.fault]

AGGREGATES = int(os.environ.get("FAULT_AGGREGATES", "500"))
COMMANDS_PER_AGGREGATE = int(os.environ.get("FAULT_COMMANDS_PER_AGGREGATE", "20"))
KILLS = int(os.environ.get("FAULT_KILLS", "20"))
PACE_S = float(os.environ.get("FAULT_PACE_S", "0.6"))  # per 100 commands: ~170 commands/s
SKUS = [("apple", 100), ("pear", 120), ("plum", 90), ("fig", 300), ("kiwi", 80)]


def test_kill_minus_nine_loses_and_duplicates_nothing(stack: StackEndpoints, tmp_path: Path) -> None:
    seed = int(os.environ.get("FAULT_SEED", str(random.randrange(1 << 30))))
    rng = random.Random(seed)
    dep = Deployment(prefix=f"fault{uuid.uuid4().hex[:8]}", data_dir=tmp_path)
    dep.start("w1")
    dep.wait_healthy("w1")
    settings = dep.settings()
    total = AGGREGATES * COMMANDS_PER_AGGREGATE
    sent: list[str] = []
    client = CommandClient(settings, "orders", wait=False)

    def produce() -> None:
        # round-robin over aggregates keeps each aggregate's commands in order
        for step in range(COMMANDS_PER_AGGREGATE):
            for a in range(AGGREGATES):
                aggregate_id = f"agg-{a}"
                if step == 0:
                    command: object = PlaceOrder(f"customer-{a % 37}", "EUR")
                else:
                    sku, price = SKUS[(a + step) % len(SKUS)]
                    command = AddItem(sku, 1 + step % 3, price)
                command_id, _ = client.send(aggregate_id, command)
                sent.append(command_id)
                if len(sent) % 100 == 0:
                    time.sleep(PACE_S)  # spread over the kill window: kills land mid-stream
        client.flush()

    producer = threading.Thread(target=produce)
    started = time.monotonic()
    producer.start()
    kills = 0
    killed_with_backlog = 0
    try:
        while kills < KILLS:
            time.sleep(rng.uniform(0.2, 2.5))  # when the next kill lands: a fault's timing, not a wait
            killed_with_backlog += producer.is_alive()
            dep.kill("w1")
            kills += 1
            dep.start("w1")
            if rng.random() < 0.5:  # sometimes kill it again while it is still starting
                dep.wait_healthy("w1")
        producer.join()
        dep.wait_healthy("w1")

        results: dict[str, int] = {}

        def all_answered() -> bool:
            results.clear()
            for msg in read_topic(settings, client.runtime.topics.results, idle_timeout=2.0):
                results[msg.key().decode()] = results.get(msg.key().decode(), 0) + 1
            return len(results) >= total

        # on a timeout the report below (with the seed) and its assertions say what is missing
        with contextlib.suppress(AssertionError):
            wait_until(all_answered, f"a result for each of the {total} commands", 300, every=2)
        elapsed = time.monotonic() - started
        assert len(set(sent)) == total

        versions: dict[str, list[int]] = defaultdict(list)
        command_ids: Counter[str] = Counter()
        events = []
        for msg in read_topic(settings, client.runtime.topics.events, idle_timeout=3.0):
            meta = h.as_dict(msg.headers())
            versions[msg.key().decode()].append(int(meta[h.AGGREGATE_VERSION]))
            command_ids[meta[h.COMMAND_ID]] += 1
            events.append(msg)
        duplicates = {c: n for c, n in command_ids.items() if n > 1}
        missing = set(sent) - set(command_ids)
        gaps = {a: v for a, v in versions.items() if v != list(range(1, len(v) + 1))}
        result_dups = {c: n for c, n in results.items() if n > 1}
        print(
            f"\nfault injection (seed {seed}): {kills} kills ({killed_with_backlog} while commands "
            f"were still arriving), {total} commands over {AGGREGATES} "
            f"aggregates, {len(events)} events, {len(results)} results, {len(duplicates)} duplicated, "
            f"{len(missing)} missing, {len(gaps)} aggregates with gaps, {elapsed:.0f}s"
        )
        assert not duplicates, f"events appended twice: {list(duplicates.items())[:5]}"
        assert not missing, f"commands without events: {list(missing)[:5]}"
        assert not gaps, f"version gaps: {list(gaps.items())[:3]}"
        assert len(events) == total
        assert len(results) == total and not result_dups

        # the state table (its changelog, as a restarted worker restores it) equals the fold
        table: dict[bytes, bytes] = {}
        for msg in read_topic(settings, client.runtime.topics.changelog, idle_timeout=2.0):
            if msg.key().startswith(AGGREGATE_PREFIX):
                table[msg.key()[len(AGGREGATE_PREFIX) :]] = msg.value()
        by_aggregate: dict[bytes, list[object]] = defaultdict(list)
        for msg in events:
            by_aggregate[msg.key()].append(client.runtime.codec.decode(msg.value()).message)
        context = client.runtime.context
        mismatched = []
        for key, history in by_aggregate.items():
            stored = decode_aggregate(client.runtime.states, table[key])
            if stored.version != len(history) or stored.state != context.fold(history):
                mismatched.append(key)
        assert not mismatched, f"table differs from the fold of the log for {mismatched[:5]}"
        assert len(by_aggregate) == AGGREGATES
    finally:
        client.close()
        dep.stop_all()
