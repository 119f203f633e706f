"""`python -m bench.games.burst` (`make bench-games`): the games example's two figures, each on a
deployment of its own (random topic prefix, one worker) on the default stack.

- **burst**: `GAMES_BENCH_RATE` bets/s (5,000) offered for `GAMES_BENCH_SECONDS` (5) on one
  round, from 10 bets per player over as many players as that takes (each player's bets are one
  stake aggregate: the round's hot key spread over every partition); the latency of each bet from
  its send to its result (p50, p99, max) and the rate the results came back at. The bets are
  encoded beforehand and produced by a process of their own (`bench.games.offer`); the rate it
  reached is recorded, and the burst marked invalid (`valid: false`) when it fell short. The worker hosts
  games alone (`STREAMS_PROCESSES=0`): the figure is the hot key's, not the process manager's.
- **settlement**: 500 funded bets on one round (50 players x 10) with the settlement process
  running; once every stake is reserved, the round is closed and settled, and the figure is the
  time from the `RoundSettled` record to the last wallet credit (and the last capture), by the
  records' log timestamps.

The result (with the load average before and after each part: the machine may be shared, so the
figures are informational) goes to `GAMES_BENCH_OUT` (bench/results) as `games-bench-<time>.json`;
`python -m bench.games.markdown` makes the table of docs/games.md from it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.games.offer import offer, prepare
from bench.games.play import ODDS, execute_all, now_ms
from bench.harness import drop
from bench.provenance import provenance
from streams.client import CommandClient, ResultWaiter, read_topic
from streams.config import Settings
from streams.contexts.games import CloseBetting, PlaceBet, RoundTerms, SettleRound, StartGameRound, stake_id
from streams.contexts.registry import get_context
from streams.contexts.wallet import DepositFunds, OpenWallet
from streams.core.commands import CommandResult
from streams.kafka.runtime import ContextRuntime
from tests.integration.workers import Deployment, json_answer

BETS_PER_PLAYER = 10
REVEAL = "bench-reveal:17"


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (0..1) of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


@contextmanager
def deployment(directory: str, letter: str, **env: str) -> Iterator[Deployment]:
    """One healthy worker of a new deployment; stopped, and its topics deleted, afterwards."""
    dep = Deployment(prefix=f"{letter}{uuid.uuid4().hex[:8]}", data_dir=Path(directory), extra_env=env)
    dep.start("w1")
    try:
        dep.wait_healthy("w1")
        yield dep
    finally:
        dep.stop_all()
        drop(dep.settings(), [f"{dep.prefix}."])


def terms(round_id: str, closes_in_s: float = 3600.0) -> RoundTerms:
    return RoundTerms(
        round_id, "bench-table", 100, 1_000, 100_000, now_ms() + int(closes_in_s * 1000), "odds-v1",
        hashlib.sha256(REVEAL.encode()).hexdigest(),
    )  # fmt: skip


def burst(directory: str, rate: float, seconds: float) -> dict[str, Any]:
    """Bets at `rate`/s for `seconds` on one round: latency bet -> result. The bets are encoded
    before the burst and produced by a process of their own (`bench.games.offer`); this process
    only follows the results. The rate the generator reached is recorded, and the run marked
    invalid when it fell short of `rate` (`SHORTFALL`)."""
    total = int(rate * seconds)
    before = load_avg()
    env = {"STREAMS_CONTEXTS": "games", "STREAMS_SINKS": "0", "STREAMS_PROCESSES": "0"}
    with deployment(directory, "gb", **env) as dep, CommandClient(dep.settings(), "games") as games:
        t = terms("r-burst")
        execute_all(games, [(t.round_id, StartGameRound(t))], 120)
        bets = []
        for n in range(total):
            player = f"p-{n // BETS_PER_PLAYER:05d}"
            bets.append(
                (stake_id(t.round_id, player), PlaceBet(t, player, f"b{n}", "red", 100, 20_000, now_ms()))
            )
        records = prepare(games, bets)
        waiter = ResultWaiter(dep.settings(), games.runtime)
        done = [0.0] * total
        futures = [waiter.expect(r.command_id) for r in records]
        for n, future in enumerate(futures):
            future.add_done_callback(functools.partial(_stamp, done, n))
        at_start = load_avg()
        offered = offer(dep.settings(), games.runtime.topics.commands, records, rate)
        try:
            results = [f.result(timeout=1800) for f in futures]
        finally:
            waiter.close()
    latencies = [done[n] - offered.sent_at[n] for n in range(total)]
    shortfall = offered.shortfall(rate)
    return {
        "bets": total,
        "offered_rate": rate,
        "sent_rate": round(offered.sent_rate(), 1),
        "valid": not shortfall,
        "invalid_because": shortfall,
        "acked_s": round(offered.acked_s, 3),
        "accepted": sum(1 for r in results if r.accepted),
        "stakes": total // BETS_PER_PLAYER,
        "partitions_hit": len({r.event_partition for r in results if r.accepted}),
        "results_rate": round(total / (max(done) - offered.sent_at[0]), 1),
        "latency_s": {
            "p50": round(statistics.median(latencies), 3),
            "p99": round(percentile(latencies, 0.99), 3),
            "max": round(max(latencies), 3),
        },
        "load_avg_before": before,
        "load_avg_at_burst": at_start,
        "load_avg_after": load_avg(),
    }


def _stamp(done: list[float], n: int, _future: Future[CommandResult]) -> None:
    """When bet `n`'s result came back (wall clock, like the generator's send times)."""
    done[n] = time.time()


def _reserved(dep: Deployment, stakes: dict[str, int]) -> bool:
    for player, total in stakes.items():
        status, body = json_answer(f"{dep.url()}/wallet/views/wallet-balance/{player}")
        if status != 200 or body["state"]["reserved"] != total:
            return False
    return True


def settlement(directory: str, players: int = 50) -> dict[str, Any]:
    """500 funded bets settled: from RoundSettled to the last credit and capture."""
    before = load_avg()
    env = {"STREAMS_CONTEXTS": "games,wallet", "STREAMS_SINKS": "0"}
    with deployment(directory, "gs", **env) as dep:
        settings = dep.settings()
        with CommandClient(settings, "games") as games, CommandClient(settings, "wallet") as wallet:
            names = [f"p-{n:03d}" for n in range(players)]
            execute_all(wallet, [(p, OpenWallet("EUR")) for p in names], 300)
            execute_all(wallet, [(p, DepositFunds(f"d-{p}", 1_000_000)) for p in names], 300)
            t = terms("r-settle")
            execute_all(games, [(t.round_id, StartGameRound(t))], 120)
            bets = [
                (stake_id(t.round_id, p), PlaceBet(t, p, f"b{n}", pick, 200, ODDS[pick], now_ms()))
                for p in names
                for n in range(BETS_PER_PLAYER)
                for pick in ["17" if n % 4 == 0 else "red"]
            ]
            execute_all(games, bets, 600)
            stakes = {p: 200 * BETS_PER_PLAYER for p in names}
            deadline = time.monotonic() + 600
            while not _reserved(dep, stakes):
                if time.monotonic() > deadline:
                    raise TimeoutError("the bets' funds were never all reserved")
                time.sleep(1)
            execute_all(games, [(t.round_id, CloseBetting(now_ms()))], 120)
            execute_all(games, [(t.round_id, SettleRound("17", REVEAL))], 120)
            winners = sum(1 for _, b in bets if b.selection == "17")
            credits, captures = _wait_for_payments(settings, winners, len(bets))
            settled_at = _logged_at(settings, games.runtime, "RoundSettled")[0]
    return {
        "bets": len(bets),
        "winning_bets": winners,
        "round_settled_to_last_credit_s": round((max(credits) - settled_at) / 1000, 3),
        "round_settled_to_last_capture_s": round((max(captures) - settled_at) / 1000, 3),
        "load_avg_before": before,
        "load_avg_after": load_avg(),
    }


def _logged_at(settings: Settings, runtime: ContextRuntime, *kinds: str) -> list[int]:
    """The log timestamps (ms) of the context's events of these types, in log order per partition."""
    found = []
    for m in read_topic(settings, runtime.topics.events):
        if type(runtime.codec.decode(m.value()).message).__name__ in kinds:
            found.append(m.timestamp()[1])
    return found


def _wait_for_payments(settings: Settings, credits: int, captures: int) -> tuple[list[int], list[int]]:
    """The log timestamps (ms) of the wallet's WinningsCredited and StakeCaptured, once all are in."""
    runtime = ContextRuntime.connect(settings, get_context("wallet"))
    deadline = time.monotonic() + 900
    while True:
        credited = _logged_at(settings, runtime, "WinningsCredited")
        captured = _logged_at(settings, runtime, "StakeCaptured")
        if len(credited) >= credits and len(captured) >= captures:
            return credited, captured
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"payments missing: {len(credited)}/{credits} credits, {len(captured)}/{captures}"
            )
        time.sleep(2)


def main() -> int:
    rate = float(os.environ.get("GAMES_BENCH_RATE", "5000"))
    seconds = float(os.environ.get("GAMES_BENCH_SECONDS", "5"))
    result: dict[str, Any] = {"provenance": provenance()}
    with tempfile.TemporaryDirectory(prefix="games-bench-") as directory:
        result["burst"] = burst(directory, rate, seconds)
        print(json.dumps(result["burst"], indent=2), flush=True)
        result["settlement"] = settlement(directory)
        print(json.dumps(result["settlement"], indent=2), flush=True)
    out = Path(os.environ.get("GAMES_BENCH_OUT", "bench/results"))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"games-bench-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {path}")
    if not result["burst"]["valid"]:
        print(f"burst invalid: {result['burst']['invalid_because']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
