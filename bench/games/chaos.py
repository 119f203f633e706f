"""`python -m bench.games.chaos` (`make chaos-games`; `make chaos-games-short` for CI): the games
example while the worker hosting the settlement process is killed with SIGKILL again and again.

On the stack the tests use (`STREAMS_BOOTSTRAP`, one broker is enough), a deployment with a random
topic prefix runs two workers hosting games and wallet: `w1` without processes
(`STREAMS_PROCESSES=0`) and `w2` with the settlement process. While `bench.games.play` funds the
players and plays the rounds, a killer thread waits for `w2` to be healthy, lets it run a few
seconds, kills its process group with SIGKILL and starts it again, `GAMES_CHAOS_KILLS` times (from
the first wave on; every kill and restart rebalances the contexts' groups too, which on a loaded
machine stalls the play, so the kills stop once that many are done). Then, with `w2` up, the
checker reads the logs (again, up to `GAMES_CHAOS_SETTLE_S`, until what was in flight has
settled) and judges them.

Sizes: `GAMES_CHAOS_ROUNDS` (50), `GAMES_CHAOS_BETS` per round (125), `GAMES_CHAOS_KILLS` (10),
`GAMES_CHAOS_CLOSE_S` (120: how long a round closed by its deadline takes bets; a kill can hold
a wave's `StartGameRound` for a minute or more, and bets sent after `closes_at` are rejected);
the result goes to `GAMES_CHAOS_OUT` (bench/results) as `games-chaos-<time>.json`, the workers'
logs beside it under bench-results/. Exits 1 on any problem.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.games.judge import Verdict, judge
from bench.games.logs import observe
from bench.games.play import PlayConfig, Player
from bench.provenance import provenance
from tests.integration.workers import Deployment, wait_until

log = logging.getLogger("bench.games.chaos")
PROCESS_WORKER = "w2"


@dataclass
class Killer:
    """Kills the process manager's worker with SIGKILL and restarts it, in a thread."""

    dep: Deployment
    kills_wanted: int
    up_s: tuple[float, float] = (4.0, 12.0)
    kills: list[dict[str, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _started: float = field(default_factory=time.monotonic)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="killer", daemon=True)
        self._thread.start()

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join()

    def _run(self) -> None:
        rng = random.Random(9)
        try:
            while len(self.kills) < self.kills_wanted:
                time.sleep(rng.uniform(*self.up_s))
                at = time.monotonic()
                self.dep.kill(PROCESS_WORKER)  # SIGKILL to the worker's process group
                log_path = self.dep.data_dir / f"{PROCESS_WORKER}.log"
                offset = log_path.stat().st_size
                self.dep.start(PROCESS_WORKER)
                self.dep.wait_healthy(PROCESS_WORKER)
                wait_until(
                    functools.partial(_hosting, log_path, offset),
                    "the restarted worker to host the process",
                    300,
                )
                healthy = time.monotonic()
                self.kills.append(
                    {"at_s": round(at - self._started, 1), "hosting_after_s": round(healthy - at, 1)}
                )
                log.warning("kill %d: w2 hosts the process again after %.1fs", len(self.kills), healthy - at)
        except Exception as exc:  # reported in the result: the run must not pass without its kills
            log.exception("killer failed")
            self.errors.append(f"{type(exc).__name__}: {exc}")


def _hosting(log_path: Path, offset: int) -> bool:
    """Whether the worker logged, past `offset`, that its settlement stage was assigned partitions
    (healthy comes first: a kill before it would find no process manager to kill)."""
    with log_path.open("rb") as f:
        f.seek(offset)
        return b"process.settlement: assigned [" in f.read()


def config_from_env() -> tuple[PlayConfig, int, float]:
    """The play's size, the kills wanted and how long to wait for the last settlements."""
    rounds = int(os.environ.get("GAMES_CHAOS_ROUNDS", "50"))
    config = PlayConfig(
        rounds=rounds,
        bets_per_round=int(os.environ.get("GAMES_CHAOS_BETS", "125")),
        close_after_s=float(os.environ.get("GAMES_CHAOS_CLOSE_S", "120")),
        wave=min(10, rounds),
        result_timeout_s=float(os.environ.get("GAMES_CHAOS_TIMEOUT_S", "900")),
    )
    return (
        config,
        int(os.environ.get("GAMES_CHAOS_KILLS", "10")),
        float(os.environ.get("GAMES_CHAOS_SETTLE_S", "600")),
    )


def settle_and_judge(dep: Deployment, player: Player, settle_s: float) -> Verdict:
    """Judge the logs, again every few seconds while problems remain, up to `settle_s`: the last
    commands of the process may still be in flight when the play ends."""
    deadline = time.monotonic() + settle_s
    while True:
        verdict = judge(player.ledger, observe(dep.settings(), dep.url("w1")))
        if verdict.passed or time.monotonic() > deadline:
            return verdict
        log.warning("not settled yet: %s", verdict.problems[:2])
        time.sleep(10)


def worker_log_counts(text: str) -> dict[str, int]:
    """What a worker's log says about its crashes and batches."""
    return {
        "batches_aborted": text.count("batch aborted"),
        "session_restarts": text.count("failed; restarting"),
        "tracebacks": text.count("Traceback"),
    }


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    config, kills_wanted, settle_s = config_from_env()
    started = time.monotonic()
    result: dict[str, Any] = {
        "provenance": provenance(),
        "config": asdict(config),
        "kills_wanted": kills_wanted,
    }
    stamp = time.strftime("%Y%m%dT%H%M%S")
    with tempfile.TemporaryDirectory(prefix="games-chaos-") as directory:
        common = {"STREAMS_CONTEXTS": "games,wallet", "STREAMS_SINKS": "0"}
        dep = Deployment(prefix=f"gchaos{uuid.uuid4().hex[:8]}", data_dir=Path(directory), extra_env=common)
        try:
            _start_pair(dep)
            player = Player(dep.settings(), config)
            killer = Killer(dep, kills_wanted)
            try:
                player.fund()
                killer.start()
                player.play()
                result["play_s"] = round(time.monotonic() - started, 1)
            finally:
                killer.join()
            dep.wait_healthy(PROCESS_WORKER)
            verdict = settle_and_judge(dep, player, settle_s)
            player.close()
            result["workers_alive"] = {w: p.poll() is None for w, p in dep.workers.items()}
        finally:
            dep.stop_all()
            logs = {w: (Path(directory) / f"{w}.log").read_text(errors="replace") for w in ("w1", "w2")}
            Path("bench-results").mkdir(exist_ok=True)
            for w in logs:
                shutil.copy(Path(directory) / f"{w}.log", f"bench-results/games-chaos-{stamp}-{w}.log")
    result.update(
        kills=killer.kills, killer_errors=killer.errors, play=_play_stats(player),
        check={**asdict(verdict), "passed": verdict.passed},
        worker_logs={w: worker_log_counts(t) for w, t in logs.items()},
        seconds=round(time.monotonic() - started, 1),
    )  # fmt: skip
    failed = not verdict.passed or killer.errors or len(killer.kills) < kills_wanted
    failed = failed or not all(result["workers_alive"].values())
    result["passed"] = not failed
    out = Path(os.environ.get("GAMES_CHAOS_OUT", "bench/results"))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"games-chaos-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(verdict.counts, indent=2))
    for problem in [*verdict.problems, *killer.errors]:
        print(f"  problem: {problem}")
    verdict_word = "FAILED" if failed else "PASSED"
    print(f"{len(killer.kills)} kills; {verdict_word}; written {path} ({result['seconds']:.0f}s)")
    return 1 if failed else 0


def _start_pair(dep: Deployment) -> None:
    """w1 (games and wallet, no process) and w2 (the same and the settlement process), healthy."""
    dep.extra_env["STREAMS_PROCESSES"] = "0"
    dep.start("w1")
    dep.wait_healthy("w1")
    dep.extra_env["STREAMS_PROCESSES"] = "1"
    dep.start(PROCESS_WORKER)
    dep.wait_healthy(PROCESS_WORKER)


def _play_stats(player: Player) -> dict[str, Any]:
    return {
        "rejected": dict(player.stats.rejected),
        "settle_retries": player.stats.settle_retries,
        "waves_s": player.stats.waves_s,
    }


if __name__ == "__main__":
    sys.exit(main())
