"""Timing a peer on the bench traffic, the way scenario b is timed.

Per peer: an input and an output topic of its own (`<prefix>commands`, `<prefix>events`, the
partitions of our topics), the traffic pre-loaded as JSON commands before the clock starts, then
the peer started in a child process. The peer reports when it processed its first command; a
`read_committed` consumer of the output topic (in this process, no consumer group) stamps the
moment the count of output records reaches the number of commands, i.e. the transaction holding
the last command is committed. commands/s = commands / (last output - first processed), on the
machine's wall clock (both processes read the same clock). Every topic whose
name holds the peer's application id (input, output, the peer's changelog) and its state directory
are deleted afterwards unless BENCH_KEEP_TOPICS=1.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from bench.harness import preload
from bench.peers import kafka_streams, quix_env
from bench.peers.wire import command_bytes
from streams.config import Settings
from streams.core.decider import Message
from streams.kafka.runtime import ensure_topics
from streams.wire.topics import TopicSpec

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = float(os.environ.get("BENCH_PEER_TIMEOUT_S", "1800"))
"""A peer that has not handled every command by then fails the scenario."""
COMMIT_INTERVAL_S = os.environ.get("BENCH_PEER_COMMIT_INTERVAL")
"""The peers' commit interval in seconds; by default our write path's (`STREAMS_COMMIT_INTERVAL`)."""
KEEP = os.environ.get("BENCH_KEEP_TOPICS") == "1"


@dataclass(frozen=True)
class PeerDeployment:
    """Where a peer runs: its application id (consumer group), topics and state directory."""

    app_id: str
    source: str
    sink: str
    state_dir: Path

    @classmethod
    def of(cls, prefix: str) -> PeerDeployment:
        """The deployment of the run prefix `prefix` (`bench-<run>-g.`)."""
        state_dir = Path(".stack/bench").resolve() / prefix
        return cls(prefix.rstrip("."), f"{prefix}commands", f"{prefix}events", state_dir)


def commit_interval(settings: Settings) -> float:
    """The peers' commit interval (seconds)."""
    return float(COMMIT_INTERVAL_S) if COMMIT_INTERVAL_S else settings.commit_interval_s


def quix_streams(settings: Settings, traffic: list[tuple[str, Message]], prefix: str) -> dict[str, Any]:
    """Scenario g: the Quix Streams application of `bench.peers.quix_app` over `traffic`."""
    d = PeerDeployment.of(prefix)
    args = (settings.bootstrap, d.source, d.sink, d.app_id, str(d.state_dir), str(len(traffic)))
    command = quix_env.command("bench.peers.quix_app", *args, str(commit_interval(settings)))
    return measure(settings, traffic, d, command, quix_env.environment())


def kafka_streams_peer(settings: Settings, traffic: list[tuple[str, Message]], prefix: str) -> dict[str, Any]:
    """Scenario h: the Kafka Streams application (`OrdersPeer`) over `traffic`."""
    java = kafka_streams.build()
    d = PeerDeployment.of(prefix)
    command = kafka_streams.peer_command(
        java,
        settings.bootstrap,
        d.source,
        d.sink,
        d.app_id,
        d.state_dir,
        len(traffic),
        commit_interval(settings),
        TIMEOUT_S,
    )
    return measure(settings, traffic, d, command)


def measure(
    settings: Settings,
    traffic: list[tuple[str, Message]],
    d: PeerDeployment,
    command: list[str],
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Pre-load `traffic`, run `command` (the peer, in `env`) and time it on its output topic."""
    n = len(traffic)
    topics = [TopicSpec(t, settings.partitions, {}) for t in (d.source, d.sink)]
    ensure_topics(settings, topics)
    try:
        preload(settings, d.source, [(k.encode(), command_bytes(c)) for k, c in traffic])
        observer = _observer(settings, d.sink)
        cpu_before = _children_cpu()
        with tempfile.TemporaryDirectory(prefix="bench-peer-") as logs:
            out, err = Path(logs, "stdout"), Path(logs, "stderr")
            with out.open("wb") as stdout, err.open("wb") as stderr:
                child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
                try:
                    seen, first_seen, last = _watch(observer, n, child)
                    code = child.wait(timeout=120)
                finally:
                    observer.close()
                    if child.poll() is None:
                        child.kill()
                        child.wait()
            report = out.read_text().strip().splitlines()
            if code != 0 or seen < n or not report:
                tail = err.read_text()[-3000:]
                raise RuntimeError(f"peer exited {code} after {seen} of {n} outputs: {report}\n{tail}")
        peer = json.loads(report[-1])
        first = peer["first_processed_at"]
        return {
            "commands": n,
            "outputs": seen,
            "seconds": last - first,
            "commands_per_s": n / (last - first),
            "first_output_after_s": first_seen - first,
            "peer_cpu_s": _children_cpu() - cpu_before,
            "commit_interval_s": commit_interval(settings),
            "peer": peer,
        }
    finally:
        if not KEEP:
            _clean(settings, d)


def _observer(settings: Settings, sink: str) -> Consumer:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap,
            "group.id": f"{sink}-observer",  # required by the client; offsets are never committed
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    consumer.assign([TopicPartition(sink, p, OFFSET_BEGINNING) for p in range(settings.partitions)])
    return consumer


def _watch(observer: Consumer, expected: int, child: subprocess.Popen[bytes]) -> tuple[int, float, float]:
    """(outputs seen, when the first was seen, when the count reached `expected`), in seconds
    since the epoch."""
    seen, first, last = 0, 0.0, 0.0
    deadline = time.monotonic() + TIMEOUT_S
    quiet_since: float | None = None
    while seen < expected:
        batch = observer.consume(1000, 0.05)
        now = time.time()
        got = sum(1 for m in batch if m.error() is None)
        if got:
            first = first or now
            seen += got
            last = now
            quiet_since = None
        elif child.poll() is not None:  # exited: what it committed shows within a moment
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 5:
                break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{seen} of {expected} outputs after {TIMEOUT_S:.0f} s")
    return seen, first, last


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _clean(settings: Settings, d: PeerDeployment) -> None:
    """Delete the peer's topics (every name holding its application id), group and state."""
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    names = [t for t in admin.list_topics(timeout=10).topics if d.app_id in t]
    for future in admin.delete_topics(names, operation_timeout=30).values() if names else ():
        with contextlib.suppress(Exception):  # best effort clean-up
            future.result()
    for future in admin.delete_consumer_groups([d.app_id], request_timeout=30).values():
        with contextlib.suppress(Exception):
            future.result()
    shutil.rmtree(d.state_dir, ignore_errors=True)
