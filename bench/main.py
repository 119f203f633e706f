"""`make bench`: every figure of issue 7 in one run, on one broker, on this machine.

a. ceiling: confluent-kafka consume -> transactional produce of the same records, read_committed
b. our write path: the CommandProcessor (decode, RocksDB state, decide, evolve, events + results +
   changelog + offsets in one transaction) over the same pre-loaded commands, exactly once
c. the same with at-least-once (idempotent producer, offsets committed after the acks)
latency: command -> result at a steady offered load, through the public client
d. read side, over b's events topic (bench/read.py): live view events/s, replay events/s
   (`streams replay`), and a bare read_committed consume of the same topic
e. the seed's design: PostgreSQL EventStore table, per-event INSERT, optimistic concurrency on the
   version, state folded from the aggregate's events per command (bench/seed.py)
f. the `eventsourcing` library with its PostgreSQL backend, same decide/evolve (bench/eventsourcing_lib.py)
g. Quix Streams: our decide/evolve in a stateful StreamingDataFrame on RocksDB, exactly once (bench/peers/)
h. Kafka Streams (Java): the same two rules in a processor over a RocksDB store, exactly_once_v2 (bench/peers)
memory: peak RSS of a write-path worker process with 100,000 and 1,000,000 aggregates in its state
   table (bench/memory.py)
telemetry: the devices fleet through the window stage and the decider (bench/telemetry.py, also
   `python -m bench.telemetry` alone): capacity and the ratio to a raw consume, 10,000 readings/s
   sustained with the breach -> AlertRaised latency, peak RSS with 10,000 and 100,000 devices

b, g and h run back to back in rounds whose order rotates (bench/rounds.py, BENCH_ROUNDS).
Sizes come from BENCH_* environment variables (see BENCHMARKS.md); BENCH_ONLY=a,b,c,... runs a subset.
The result, with its provenance at the start and at the end (bench/provenance.py), goes to
bench/results/bench-<time>.json (BENCH_OUT names another directory); `python -m bench.benchmarks_md`
turns the committed result files into BENCHMARKS.md's tables and plots.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from bench import read as bench_read
from bench import telemetry as bench_telemetry
from bench.harness import drop, preload, run_write_path
from bench.latency import RATE as LATENCY_RATE
from bench.latency import latency
from bench.memory import measure
from bench.offline import measure as measure_offline
from bench.provenance import provenance
from bench.report import table, targets
from bench.rounds import write_path_and_peers
from bench.scaleout import scale_out
from bench.seed import seed_design
from bench.traffic import AGGREGATES, N, commands
from streams.config import Settings
from streams.contexts.orders import context as orders
from streams.kafka.clients import take
from streams.kafka.runtime import ContextRuntime, ensure_topics
from streams.wire.topics import TopicSpec

console = Console()
BASELINE_MAX_S = float(os.environ.get("BENCH_BASELINE_MAX_S", "300"))
"""e and f stop after this many seconds; their rate is then over the commands they handled."""
PG_SYNC_COMMIT = os.environ.get("BENCH_PG_SYNCHRONOUS_COMMIT", "on")
"""synchronous_commit for e and f's sessions (the stack's server default is off)."""
MEMORY_AGGREGATES = [
    int(n) for n in os.environ.get("BENCH_MEMORY_AGGREGATES", "100000,1000000").split(",") if n
]
FANOUT = int(os.environ.get("BENCH_FANOUT", "3"))
"""Output records per input of the second bare loop (a'): as many as the write path produces per
command (its event, its result, its aggregate's state; the results record is one per batch)."""
SCENARIOS = ("offline", "a", "b", "g", "h", "c", "latency", "scale", "d", "e", "f", "memory", "telemetry")
ONLY = set(os.environ.get("BENCH_ONLY", ",".join(SCENARIOS)).split(","))
KEEP = os.environ.get("BENCH_KEEP_TOPICS") == "1"
OUT = Path(os.environ.get("BENCH_OUT", "bench/results"))


def ceiling(
    settings: Settings, records: list[tuple[bytes, bytes]], prefix: str = "", copies: int = 1
) -> float:
    """Input records/s of a bare consume -> transactional produce loop (same batching), producing
    `copies` output records per input (our write path produces ~4: event, result, state and
    command-id changelog entries)."""
    run = prefix.rstrip(".") or f"bench-{uuid.uuid4().hex[:8]}"
    source, sink = f"{run}.in", f"{run}.out"
    ensure_topics(
        settings,
        [TopicSpec(t, settings.partitions, {}) for t in (source, sink)],
    )
    preload(settings, source, records)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.bootstrap,
            "group.id": run,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 20,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": settings.bootstrap,
            "transactional.id": run,
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "retry.backoff.ms": 10,  # as the write path's producer
        }
    )
    producer.init_transactions(30)
    consumer.subscribe([source])
    done = 0
    started = 0.0
    while done < len(records):
        batch = [m for m in take(consumer, 1000, 0.1) if m.error() is None]
        if not batch:
            continue
        started = started or time.perf_counter()
        producer.begin_transaction()
        offsets: dict[int, int] = {}
        for m in batch:
            for _ in range(copies):
                producer.produce(sink, m.value(), m.key(), partition=m.partition(), headers=m.headers())
            offsets[m.partition()] = m.offset() + 1
        producer.send_offsets_to_transaction(
            [TopicPartition(source, p, o) for p, o in offsets.items()],
            consumer.consumer_group_metadata(),
        )
        producer.commit_transaction()
        done += len(batch)
    elapsed = time.perf_counter() - started
    consumer.close()
    return done / elapsed


def write_path(settings: Settings, commands: list[tuple[str, Any]]) -> float:
    """Commands/s of the CommandProcessor over pre-loaded commands (settings.exactly_once decides)."""
    return run_write_path(settings, commands)[0]


def read_side(settings: Settings, runtime: ContextRuntime, events: int, results: dict[str, Any]) -> None:
    """(d) bench/read.py's replay figures over an events topic holding `events` events."""
    bench_read.EVENTS = events  # its functions read the event count from this module global
    measured: dict[str, Any] = {}
    bench_read.bench_replay(settings, runtime, measured)
    results["d_live_view_events_per_s"] = events / measured["a_live_v1_initial_s"]
    results["d_replay_events_per_s"] = measured["a_replay_events_per_s"]
    results["d_replay_seconds"] = measured["a_replay_seconds"]
    results["d_replay_parallel_processes"] = measured["a_replay_parallel_processes"]
    results["d_replay_parallel_events_per_s"] = measured["a_replay_parallel_events_per_s"]
    results["d_replay_parallel_seconds"] = measured["a_replay_parallel_seconds"]
    results["d_raw_events_per_s"] = measured["a_raw_events_per_s"]
    results["d_raw_records"] = measured["a_raw_records"]
    results["d_view"] = measured["a_view"]
    if "a_projector_steady_events_per_s" in measured:
        results["d_projector_steady_events_per_s"] = measured["a_projector_steady_events_per_s"]


def _pg_session_options() -> contextlib.AbstractContextManager[None]:
    """PGOPTIONS for the libpq connections that e and f open (both backends read it)."""

    @contextlib.contextmanager
    def scoped() -> Any:
        before = os.environ.get("PGOPTIONS")
        os.environ["PGOPTIONS"] = f"-c synchronous_commit={PG_SYNC_COMMIT}"
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("PGOPTIONS", None)
            else:
                os.environ["PGOPTIONS"] = before

    return scoped()


def _ratio(results: dict[str, Any], name: str, top: str, bottom: str) -> None:
    if results.get(top) and results.get(bottom):
        results[name] = results[top] / results[bottom]


def main() -> None:
    """Run every scenario and print the table (JSON under bench/results/, or BENCH_OUT)."""
    from bench.eventsourcing_lib import eventsourcing_library  # the `bench` extra: only here

    settings = Settings()
    run = uuid.uuid4().hex[:8]
    prefixes = {name: f"bench-{run}-{name}." for name in ("a", "a4", "b", "c", "lat", "lat5k")}
    started = provenance()
    traffic = commands()
    runtime = ContextRuntime.connect(settings, orders)
    records = [(k.encode(), runtime.codec.encode(c)) for k, c in traffic]
    size = statistics.mean(len(v) for _, v in records)
    results: dict[str, Any] = {
        "provenance_at_start": started,
        "commands": N,
        "aggregates": AGGREGATES,
        "record_bytes": size,
        "partitions": settings.partitions,
        "commit_interval_ms": settings.commit_interval_s * 1000,
        "latency_rate": LATENCY_RATE,
        "cpus": started["cpus"],
        "load_avg_at_start": started["load_avg"],
        "pg_synchronous_commit": PG_SYNC_COMMIT,
        "complete": False,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"bench-{time.strftime('%Y%m%dT%H%M%S')}.json"
    steps = [s for s in SCENARIOS if s in ONLY]
    telemetry_prefixes = bench_telemetry.prefixes_of(run)
    memory_prefix: list[str] = []
    round_prefixes: list[str] = []
    b_deployment: tuple[Settings, ContextRuntime] | None = None
    try:
        with Progress(console=console) as progress:
            overall = progress.add_task("benchmarks", total=len(steps))

            def step(task: TaskID, label: str) -> None:
                progress.update(task, description=label)
                console.log(label)

            task = progress.add_task("", total=None)
            if "offline" in steps:
                step(task, "offline: the write path's and the projector's CPU, no Kafka")
                offline = measure_offline()
                results["offline_write_us_per_command"] = offline["write_us_per_command"]
                results["offline_read_us_per_event"] = offline["read_us_per_event"]
                progress.advance(overall)
            if "a" in steps:
                step(task, "a. bare consume→transactional produce loop")
                results["a_ceiling_rps"] = ceiling(settings, records, prefixes["a"])
                step(task, f"a. the same loop producing {FANOUT} records per input")
                results["a_fanout_rps"] = ceiling(settings, records, prefixes["a4"], copies=FANOUT)
                results["a_fanout"] = FANOUT
                progress.advance(overall)
            if steps_b_g_h := {"b", "g", "h"} & set(steps):
                step(task, "b. our write path, exactly once; g. Quix Streams; h. Kafka Streams, in rounds")
                figures, round_prefixes, b_deployment = write_path_and_peers(
                    settings, traffic, run, steps_b_g_h, console.log
                )
                results.update(figures)
                progress.advance(overall, len(steps_b_g_h))
            if "c" in steps:
                step(task, "c. our write path, at least once")
                at_least_once = replace(settings, exactly_once=False)
                results["c_write_path_cps"] = run_write_path(at_least_once, traffic, prefixes["c"])[0]
                progress.advance(overall)
            if "latency" in steps:
                step(task, f"command→result latency at {LATENCY_RATE}/s")
                low = latency(settings, prefixes["lat"])
                results["latency_p50_ms"], results["latency_p99_ms"] = low.p50 * 1000, low.p99 * 1000
                step(task, "command→result latency at 5,000/s")
                high = latency(settings, prefixes["lat5k"], rate=5000)
                results["latency_5000_p50_ms"], results["latency_5000_p99_ms"] = (
                    high.p50 * 1000,
                    high.p99 * 1000,
                )
                results["latency_cdf_ms"] = {str(LATENCY_RATE): low.cdf_ms, "5000": high.cdf_ms}
                progress.advance(overall)
            if "scale" in steps:
                for processes in (1, 2):
                    step(task, f"scale-out: the write path in {processes} worker process(es)")
                    results[f"scale_{processes}_cps"] = scale_out(settings, traffic, processes)
                progress.advance(overall)
            if "d" in steps:
                step(task, "d. read side over b's events: live view, replay, raw consume")
                if b_deployment is None:
                    _, s_b, rt_b = run_write_path(settings, traffic, prefixes["b"])
                    b_deployment = (s_b, rt_b)
                read_side(*b_deployment, N, results)
                progress.advance(overall)
            with _pg_session_options():
                if "e" in steps:
                    step(task, "e. the seed's design: PostgreSQL EventStore")
                    e = seed_design(
                        settings.pg_dsn,
                        traffic,
                        max_seconds=BASELINE_MAX_S,
                        on_progress=lambda n: progress.update(task, completed=n, total=N),
                    )
                    results["e_seed_cps"] = e["commands_per_s"]
                    results["e_seed"] = e
                    progress.advance(overall)
                if "f" in steps:
                    step(task, "f. the eventsourcing library, PostgreSQL backend")
                    progress.reset(task, total=N)
                    f = eventsourcing_library(
                        settings.pg_dsn,
                        traffic,
                        max_seconds=BASELINE_MAX_S,
                        on_progress=lambda n: progress.update(task, completed=n, total=N),
                    )
                    results["f_eventsourcing_cps"] = f["commands_per_s"]
                    results["f_eventsourcing"] = f
                    progress.advance(overall)
            if "memory" in steps:
                step(task, f"memory: worker with {', '.join(f'{n:,}' for n in MEMORY_AGGREGATES)} aggregates")
                progress.reset(task, total=None)

                def show(line: str) -> None:
                    progress.update(task, description=f"memory: {line}")

                mem = measure(settings, MEMORY_AGGREGATES, show)
                memory_prefix.append(mem["prefix"])
                results["memory_samples"] = mem["samples"]
                progress.advance(overall)
            if "telemetry" in steps:
                step(task, "telemetry: the devices fleet through the window stage and the decider")
                progress.reset(task, total=None)
                memory_prefix.extend(telemetry_prefixes)
                bench_telemetry.run(
                    settings,
                    results,
                    telemetry_prefixes,
                    lambda line: progress.update(task, description=line),
                )
                progress.advance(overall)
        _ratio(results, "ratio_b_over_a", "b_write_path_cps", "a_ceiling_rps")
        _ratio(results, "ratio_b_over_a_fanout", "b_write_path_cps", "a_fanout_rps")
        _ratio(results, "ratio_c_over_b", "c_write_path_cps", "b_write_path_cps")
        _ratio(results, "ratio_d_replay_over_raw", "d_replay_events_per_s", "d_raw_events_per_s")
        _ratio(
            results,
            "ratio_d_replay_parallel_over_raw",
            "d_replay_parallel_events_per_s",
            "d_raw_events_per_s",
        )
        _ratio(results, "ratio_d_steady_over_raw", "d_projector_steady_events_per_s", "d_raw_events_per_s")
        _ratio(results, "ratio_b_over_e", "b_write_path_cps", "e_seed_cps")
        _ratio(results, "ratio_b_over_f", "b_write_path_cps", "f_eventsourcing_cps")
        _ratio(results, "ratio_scale_2_over_1", "scale_2_cps", "scale_1_cps")
        _ratio(results, "ratio_b_over_g", "b_write_path_cps", "g_quix_cps")
        _ratio(results, "ratio_b_over_h", "b_write_path_cps", "h_kstreams_cps")
        if "ratio_c_over_b" in results:
            results["exactly_once_cost"] = 1 - 1 / results["ratio_c_over_b"]
        results["targets"] = [
            {"target": t, "key": k, "value": v, "met": met} for t, k, v, met in targets(results)
        ]
        results["complete"] = True
    finally:
        results["provenance_at_end"] = provenance()
        results["load_avg_at_end"] = results["provenance_at_end"]["load_avg"]
        path.write_text(json.dumps(results, indent=2))  # partial figures too, marked incomplete
        if not KEEP:
            drop(settings, [*prefixes.values(), *round_prefixes, *memory_prefix, "bench-scale"])
    console.print(table(results, bench_telemetry.rows(results)))
    verdicts = Table(title="targets")
    verdicts.add_column("target")
    verdicts.add_column("measured", justify="right")
    verdicts.add_column("met")
    for target, _, value, met in targets(results):
        verdicts.add_row(target, value, "-" if met is None else ("yes" if met else "NO"))
    console.print(verdicts)
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()
