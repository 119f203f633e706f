"""Scenario h from Python: build the Kafka Streams peer (`kstreams/build.sh`) and its commands.

The Java lives in `kstreams/src/streamsbench/`: `Orders` (the two rules), `Wire` (the JSON of
`bench/peers/wire.py`), `OrderSerde` (the state in RocksDB), `DecideTopology` (the processor and
its store), `OrdersPeer` (the benchmark's main) and `RulesCheck` (the rules on TopologyTestDriver).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.peers.wire import command_lines
from streams.core.decider import Message

KSTREAMS = Path(__file__).resolve().parent / "kstreams"
JVM_OPTIONS = ("-Xms256m", "-Xmx1g", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn")
"""A heap like the stack's JVMs (2-core, 24 GB machine); Kafka Streams logs warnings only."""
QUICK = ("-XX:TieredStopAtLevel=1",)
"""For the short rules check: the client compiler only (~30% less CPU for a 2-second run)."""


class NoJdk(RuntimeError):
    """This machine has no JDK 17+ to build the peer with."""


@dataclass(frozen=True)
class JavaBuild:
    """The compiled peer: a java binary and the class path to run it with."""

    java: str
    classpath: str

    def command(self, main: str, *args: str, jvm: tuple[str, ...] = ()) -> list[str]:
        """The command line running `main` (a class of package `streamsbench`) with `args`, and
        JVM options `jvm` after ours."""
        return [self.java, *JVM_OPTIONS, *jvm, "-cp", self.classpath, f"streamsbench.{main}", *args]


def build() -> JavaBuild:
    """Resolve (Maven Central, cached) and compile (cached) the peer; raises `NoJdk` without a
    JDK 17+, RuntimeError when anything else fails."""
    done = subprocess.run(
        ["bash", str(KSTREAMS / "build.sh")], capture_output=True, text=True, check=False, timeout=900
    )
    if done.returncode == 3:
        raise NoJdk(done.stderr.strip())
    if done.returncode != 0:
        raise RuntimeError(f"bench/peers/kstreams/build.sh failed:\n{done.stderr[-4000:]}")
    found = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return JavaBuild(java=found["java"], classpath=found["classpath"])


def peer_command(
    java: JavaBuild,
    bootstrap: str,
    source: str,
    sink: str,
    app_id: str,
    state_dir: Path,
    expected: int,
    commit_interval_s: float,
    timeout_s: float,
) -> list[str]:
    """The command line of the peer over a broker (`OrdersPeer`'s arguments)."""
    args = (bootstrap, source, sink, app_id, str(state_dir), str(expected))
    return java.command("OrdersPeer", *args, str(round(commit_interval_s * 1000)), str(round(timeout_s)))


def rules_check(java: JavaBuild, commands: Iterable[tuple[str, Message]]) -> dict[str, Any]:
    """`RulesCheck`: `commands` through the peer's topology on TopologyTestDriver (no broker);
    `{"accepted": n, "rejected": n, "outcomes": {"accepted:ItemAdded": n, ...}}`."""
    done = subprocess.run(
        java.command("RulesCheck", jvm=QUICK),
        input=command_lines(commands),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"RulesCheck failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
