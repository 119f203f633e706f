"""`python -m bench.read`: the read side's figures, in one run on one broker.

a. replay: the machinery of `streams replay` (streams/read/replay.py; the worker is an in-process
   ContextReadSide, the same object a Faust worker runs) over an events topic filled by the
   CommandProcessor; then, in the same run, a second replay with BENCH_REPLAY_PROCESSES helper
   processes (`--processes`; default: the cores less one, at least 1); a bare confluent-kafka
   read_committed consume of that topic, and the ratios replay / raw
b. one aggregate rebuilt from the log with and without its latest snapshot (`rebuild_aggregate`),
   for aggregates of BENCH_REBUILD_EVENTS events each
c. the history index: a HistoryIndexer alone over the log of (a): events/s and bytes on disk per
   event (directory size as written, and after a flush + full compaction)
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.harness import drive_processor, drop
from bench.traffic import commands
from streams.config import Settings
from streams.kafka.runtime import ContextRuntime
from streams.kafka.store import PartitionStore
from streams.read.history_index import HistoryIndexer
from streams.read.readside import ContextReadSide
from streams.read.rebuild import rebuild_aggregate
from streams.read.replay import Progress, raw_consume_rate, replay
from streams.wire.topics import partition_for

console = Console()
EVENTS = int(os.environ.get("BENCH_READ_EVENTS", "100000"))
AGGREGATES = int(os.environ.get("BENCH_READ_AGGREGATES", "10000"))
VIEW = os.environ.get("BENCH_READ_VIEW", "order-summary")
REBUILD_AGGREGATES = int(os.environ.get("BENCH_REBUILD_AGGREGATES", "5"))
REBUILD_EVENTS = int(os.environ.get("BENCH_REBUILD_EVENTS", "10000"))
SNAPSHOT_EVERY = int(os.environ.get("BENCH_SNAPSHOT_EVERY", "1000"))
REPEATS = int(os.environ.get("BENCH_REBUILD_REPEATS", "3"))
REPLAY_PROCESSES = int(os.environ.get("BENCH_REPLAY_PROCESSES", str(max((os.cpu_count() or 2) - 1, 1))))


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout}s")
        time.sleep(0.05)


def fill(settings: Settings, commands: list[tuple[str, Any]]) -> tuple[ContextRuntime, float]:
    """Run `commands` through a CommandProcessor in this process; (runtime, commands/s)."""
    rate, runtime = drive_processor(settings, commands, "bench-read")
    return runtime, rate


def order_traffic(n: int, aggregates: int, tag: str) -> list[tuple[str, Any]]:
    """n commands, each causing exactly one event: every order is placed, then gets items."""
    return commands(n, aggregates, tag)


def bench_replay(settings: Settings, runtime: ContextRuntime, results: dict[str, Any]) -> None:
    """(a) Replay of VIEW next to its caught-up live version, then a bare consume of the log."""
    view = next(v for v in runtime.context.views if v.name == VIEW)
    one_view = replace(runtime, context=replace(runtime.context, views=(view,)))
    side = ContextReadSide(settings, one_view, worker_id="bench", client_id="bench")
    started = time.perf_counter()
    side.start()
    try:
        _wait(lambda: (p := side.projector(VIEW, 1)) is not None and p.consumed >= EVENTS, 900, "v1")
        results["a_live_v1_initial_s"] = time.perf_counter() - started
        _wait(lambda: side.history.consumed >= EVENTS and side.history.lag() == 0, 900, "history")
        _wait(lambda: side.projector(VIEW, 1).lag() == 0, 60, "v1 lag 0")  # type: ignore[union-attr]

        marks: dict[str, float] = {}
        stop = threading.Event()

        def sample() -> None:  # the new version's own first and last batch
            while not stop.is_set():
                projector = side.projector(VIEW, 2)
                if projector is not None:
                    if projector.consumed and "first" not in marks:
                        marks["first"] = time.perf_counter()
                    if projector.consumed >= EVENTS and "last" not in marks:
                        marks["last"] = time.perf_counter()
                time.sleep(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        progress: list[Progress] = []

        def show(p: Progress) -> None:
            progress.append(p)
            console.print(f"  replay v{p.version}: {p.events_done:,}/{p.events_total:,} lag {p.lag:,}")

        replay_started = time.perf_counter()
        report = replay(settings, one_view, VIEW, on_progress=show, max_lag=0, drop_after_s=1.0)
        stop.set()
        sampler.join()
        _wait(lambda: side.active(VIEW) == 2, 60, "v2 served")
        parallel = replay(
            settings,
            one_view,
            VIEW,
            on_progress=show,
            max_lag=0,
            drop_after_s=1.0,
            processes=REPLAY_PROCESSES,
        )
    finally:
        side.stop()
    count, raw_rate = raw_consume_rate(settings, runtime.topics.events, settings.partitions)
    replay_rate = EVENTS / report.seconds
    results.update(
        a_view=VIEW,
        a_replay_seconds=report.seconds,
        a_replay_events_per_s=replay_rate,
        a_replay_reported_events_per_s=report.events_per_s,
        a_replay_progress_lines=len(progress),
        a_raw_records=count,
        a_raw_events_per_s=raw_rate,
        a_ratio_replay_over_raw=replay_rate / raw_rate,
        a_replay_parallel_processes=parallel.helpers,
        a_replay_parallel_seconds=parallel.seconds,
        a_replay_parallel_events_per_s=EVENTS / parallel.seconds,
        a_ratio_replay_parallel_over_raw=EVENTS / parallel.seconds / raw_rate,
    )
    if "first" in marks and "last" in marks:
        steady = EVENTS / (marks["last"] - marks["first"])
        results["a_projector_steady_events_per_s"] = steady
        results["a_ratio_steady_over_raw"] = steady / raw_rate
    if "first" in marks:
        results["a_replay_first_batch_after_s"] = marks["first"] - replay_started


def bench_history(settings: Settings, runtime: ContextRuntime, results: dict[str, Any]) -> None:
    """(c) A HistoryIndexer alone over the whole log: throughput and bytes on disk per event."""
    directory = Path(settings.data_dir) / "history-alone"
    indexer = HistoryIndexer(
        settings,
        runtime,
        group_id=f"{runtime.groups.history}.alone",
        inputs=[runtime.topics.events, runtime.topics.snapshots],
        data_dir=directory,
        client_id="bench-history",
    )
    marks: dict[str, float] = {}
    indexer.start()
    try:
        _wait(lambda: indexer.consumed > 0, 120, "history first batch")
        marks["first"] = time.perf_counter()
        first_batch = indexer.consumed
        _wait(lambda: indexer.lag() == 0 and indexer.consumed >= EVENTS, 900, "history caught up")
        marks["last"] = time.perf_counter()
        records = indexer.consumed
        as_written = sum(store.disk_bytes() for store in indexer.stores.values())
    finally:
        indexer.stop()
    compacted = 0
    for path in sorted(directory.glob("p*")):
        store = PartitionStore(path)
        store.compact()
        compacted += store.disk_bytes()
        store.close()
    results.update(
        c_index_records=records,
        c_index_records_per_s=(records - first_batch) / (marks["last"] - marks["first"]),
        c_disk_bytes_as_written=as_written,
        c_disk_bytes_compacted=compacted,
        c_bytes_per_event_as_written=as_written / EVENTS,
        c_bytes_per_event_compacted=compacted / EVENTS,
    )


def bench_rebuild(settings: Settings, results: dict[str, Any]) -> None:
    """(b) Aggregates of REBUILD_EVENTS events, rebuilt with and without the latest snapshot."""
    tag = f"big{uuid.uuid4().hex[:4]}"
    commands = order_traffic(REBUILD_AGGREGATES * REBUILD_EVENTS, REBUILD_AGGREGATES, tag)
    runtime, rate = fill(settings, commands)
    results["b_fill_commands_per_s"] = rate
    ids = [f"{tag}-{i}" for i in range(REBUILD_AGGREGATES)]
    rows: list[dict[str, Any]] = []
    for aggregate_id in ids:
        timings: dict[bool, list[float]] = {True: [], False: []}
        outcome: dict[bool, Any] = {}
        for _ in range(REPEATS):
            for use_snapshot in (False, True):
                rebuilt = rebuild_aggregate(settings, runtime, aggregate_id, use_snapshot=use_snapshot)
                timings[use_snapshot].append(rebuilt.seconds)
                outcome[use_snapshot] = rebuilt
        full, snap = outcome[False], outcome[True]
        if full.aggregate != snap.aggregate or full.aggregate.version != REBUILD_EVENTS:
            raise AssertionError(f"{aggregate_id}: rebuilds differ ({full.aggregate.version})")
        rows.append(
            {
                "aggregate_id": aggregate_id,
                "partition": partition_for(aggregate_id.encode(), settings.partitions),
                "version": full.aggregate.version,
                "full_s": statistics.median(timings[False]),
                "full_records_read": full.records_read,
                "snapshot_s": statistics.median(timings[True]),
                "snapshot_version": snap.snapshot_version,
                "snapshot_events_folded": snap.events_folded,
                "snapshot_records_read": snap.records_read,
            }
        )
    results["b_aggregates"] = rows
    results["b_full_s_mean"] = statistics.mean(r["full_s"] for r in rows)
    results["b_snapshot_s_mean"] = statistics.mean(r["snapshot_s"] for r in rows)
    results["b_speedup"] = results["b_full_s_mean"] / results["b_snapshot_s_mean"]


def main() -> None:
    """Run (a), (c), (b) and print the table (JSON under bench-results/)."""
    base = Settings()
    run = uuid.uuid4().hex[:8]
    prefix_a, prefix_b = f"benchread-{run}.", f"benchrebuild-{run}."
    sa = replace(
        base, topic_prefix=prefix_a, app_id=f"benchread-{run}", data_dir=Path(".stack/bench") / prefix_a
    )
    sb = replace(
        base,
        topic_prefix=prefix_b,
        app_id=f"benchrebuild-{run}",
        data_dir=Path(".stack/bench") / prefix_b,
        snapshot_every=SNAPSHOT_EVERY,
    )
    results: dict[str, Any] = {
        "events": EVENTS,
        "aggregates": AGGREGATES,
        "partitions": base.partitions,
        "snapshot_every_a": base.snapshot_every,
        "rebuild_aggregates": REBUILD_AGGREGATES,
        "rebuild_events": REBUILD_EVENTS,
        "snapshot_every_b": SNAPSHOT_EVERY,
        "cpus": os.cpu_count(),
        "load_avg_at_start": os.getloadavg()[0],
        "complete": False,
    }
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    path = out / f"read-side-{time.strftime('%Y%m%dT%H%M%S')}.json"
    try:
        console.print(f"filling {EVENTS:,} events over {AGGREGATES:,} orders through the CommandProcessor")
        runtime, rate = fill(sa, order_traffic(EVENTS, AGGREGATES, "order"))
        results["a_fill_commands_per_s"] = rate
        console.print(f"a. replay of {VIEW} beside its live version, then a bare consume")
        bench_replay(sa, runtime, results)
        console.print("c. history index alone")
        bench_history(sa, runtime, results)
        console.print(
            f"b. {REBUILD_AGGREGATES} aggregates of {REBUILD_EVENTS:,} events, with/without snapshot"
        )
        bench_rebuild(sb, results)
        results["complete"] = True
    finally:
        results["load_avg_at_end"] = os.getloadavg()[0]
        path.write_text(json.dumps(results, indent=2))  # partial figures too, marked incomplete
        if os.environ.get("BENCH_KEEP_TOPICS") != "1":
            drop(base, [prefix_a, prefix_b])

    table = Table(
        title=f"read side, {EVENTS:,} events over {AGGREGATES:,} aggregates, {base.partitions} partitions"
    )
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(
        f"a. replay of {VIEW} (streams replay, end to end)", f"{results['a_replay_events_per_s']:,.0f} ev/s"
    )
    if "a_projector_steady_events_per_s" in results:
        table.add_row(
            "   new version's projector, first to last batch",
            f"{results['a_projector_steady_events_per_s']:,.0f} ev/s",
        )
    table.add_row(
        "   bare read_committed consume of the same topic", f"{results['a_raw_events_per_s']:,.0f} ev/s"
    )
    table.add_row("   replay / raw", f"{results['a_ratio_replay_over_raw']:.2f}")
    if "a_ratio_steady_over_raw" in results:
        table.add_row("   projector steady / raw", f"{results['a_ratio_steady_over_raw']:.2f}")
    table.add_row(
        f"b. rebuild, {REBUILD_EVENTS:,} events, from the log (mean)",
        f"{results['b_full_s_mean'] * 1000:,.0f} ms",
    )
    table.add_row(
        f"   from the latest snapshot (every {SNAPSHOT_EVERY:,}) + tail (mean)",
        f"{results['b_snapshot_s_mean'] * 1000:,.0f} ms",
    )
    table.add_row("   speed-up", f"{results['b_speedup']:.1f}x")
    table.add_row("c. history index, records/s (alone)", f"{results['c_index_records_per_s']:,.0f} rec/s")
    table.add_row(
        "   bytes on disk per event, as written", f"{results['c_bytes_per_event_as_written']:.1f} B"
    )
    table.add_row("   bytes on disk per event, compacted", f"{results['c_bytes_per_event_compacted']:.1f} B")
    console.print(table)
    console.print(f"written to {path}")


if __name__ == "__main__":
    main()
