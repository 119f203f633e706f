"""The write path (b) and its peers (g: Quix Streams, h: Kafka Streams) measured back to back.

Each round runs b, g and h one right after the other, in an order that rotates from round to
round (round 1: b g h, round 2: g h b, round 3: h b g, ...), so no side always gets the first
or the quieter minute; `BENCH_ROUNDS` rounds (default 1). The figures are the medians over the
rounds, and each round's figures and order are kept in the result file.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable
from typing import Any

from bench.harness import run_write_path
from bench.peers.run import kafka_streams_peer, quix_streams
from streams.config import Settings
from streams.kafka.runtime import ContextRuntime

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1"))
SIDES = ("b", "g", "h")


def order_of(round_index: int, sides: tuple[str, ...] = SIDES) -> list[str]:
    """The sides in the order of round `round_index` (0-based): rotated by one each round."""
    k = round_index % len(sides)
    return [*sides[k:], *sides[:k]]


def write_path_and_peers(
    settings: Settings,
    traffic: list[tuple[str, Any]],
    run: str,
    wanted: set[str],
    log: Callable[[str], None],
    rounds: int = ROUNDS,
) -> tuple[dict[str, Any], list[str], tuple[Settings, ContextRuntime] | None]:
    """(figures, topic prefixes used, the first b deployment: its events topic is full) of
    `rounds` rounds of the sides in `wanted` among b, g and h."""
    per_round: list[dict[str, Any]] = []
    prefixes: list[str] = []
    deployment: tuple[Settings, ContextRuntime] | None = None
    peers: dict[str, Any] = {}
    for r in range(rounds):
        sides = [s for s in order_of(r) if s in wanted]
        figures: dict[str, Any] = {"order": sides}
        for side in sides:
            prefix = f"bench-{run}-{side}{r}."
            prefixes.append(prefix)
            log(f"round {r + 1}/{rounds}: {side}")
            if side == "b":
                rate, s_b, rt_b = run_write_path(settings, traffic, prefix)
                figures["b"] = rate
                deployment = deployment or (s_b, rt_b)
            elif side == "g":
                peers["g_quix"] = quix_streams(settings, traffic, prefix)
                figures["g"] = peers["g_quix"]["commands_per_s"]
            else:
                peers["h_kstreams"] = kafka_streams_peer(settings, traffic, prefix)
                figures["h"] = peers["h_kstreams"]["commands_per_s"]
        per_round.append(figures)
    results: dict[str, Any] = {"write_path_rounds": per_round, **peers}
    for side, key in (("b", "b_write_path_cps"), ("g", "g_quix_cps"), ("h", "h_kstreams_cps")):
        values = [f[side] for f in per_round if side in f]
        if values:
            results[key] = statistics.median(values)
    if "b_write_path_cps" in results:
        results["b_us_per_command"] = 1e6 / results["b_write_path_cps"]
    return results, prefixes, deployment
