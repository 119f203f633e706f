"""Scenario g applies our rules: the function plugged into Quix Streams' StreamingDataFrame gives
the same outcomes as `streams.contexts.orders` on a traffic with rejections."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from typing import Any

import orjson

from bench.peers import quix_env
from bench.peers.rules import decide_command
from bench.peers.wire import command_json, command_lines, outcome, reference_outcomes
from tests.unit.bench.sample import sample


class JsonState:
    """A key's state kept as JSON bytes, as Quix Streams' store keeps it."""

    def __init__(self, store: dict[tuple[str, str], bytes], key: str) -> None:
        self.store, self.key = store, key

    def get(self, key: str, default: Any = None) -> Any:
        """The stored value, decoded."""
        stored = self.store.get((self.key, key))
        return default if stored is None else orjson.loads(stored)

    def set(self, key: str, value: Any) -> None:
        """Store `value` encoded."""
        self.store[(self.key, key)] = orjson.dumps(value)


def wire(command: Any) -> dict[str, Any]:
    """A command as the peer receives it: JSON bytes from the topic, decoded."""
    return orjson.loads(orjson.dumps(command_json(command)))


def test_the_sample_has_accepted_and_rejected_commands() -> None:
    counts = reference_outcomes(sample())
    reasons = {k for k in counts if k.startswith("rejected:")}
    assert len(reasons) >= 9
    assert counts["accepted:OrderPlaced"] > 0 and counts["accepted:ItemAdded"] > 0


def test_decide_command_gives_our_outcomes() -> None:
    store: dict[tuple[str, str], bytes] = {}
    got: Counter[str] = Counter()
    for key, command in sample():
        got.update(outcome(out) for out in decide_command(wire(command), JsonState(store, key)))
    assert got == reference_outcomes(sample())


def test_decide_command_through_quix_streams_on_rocksdb() -> None:
    """The same through a StreamingDataFrame (`apply(stateful=True, expand=True)`) on Quix
    Streams' own RocksDB state (`StreamingDataFrame.test`, no broker), in the Quix Streams
    virtualenv of scenario g (created from PyPI on first use, then cached)."""
    done = subprocess.run(
        quix_env.command("bench.peers.quix_check"),
        input=command_lines(sample()),
        env=quix_env.environment(),
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert Counter(json.loads(done.stdout.strip().splitlines()[-1])) == reference_outcomes(sample())
