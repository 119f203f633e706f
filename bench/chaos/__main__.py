"""`python -m bench.chaos`: start the chaos cluster (if needed) and one worker, run the scenarios
named by `CHAOS_SCENARIOS` (default: all seven, `bench.chaos.scenarios.SCENARIOS`; `leader` alone
is the short form for CI) under the load, check, print the table and write it as JSON under `CHAOS_OUT`
(bench/results). The worker runs orders (the command load) and devices (telemetry at
`CHAOS_TELEMETRY_RATE` readings/s over `CHAOS_DEVICES` devices); the checker also compares every
view with the fold of its log and every window with a replay of the raw readings.
Exits 1 when the checker finds a problem or a probe command got no result.
`CHAOS_KEEP_CLUSTER=1` leaves the cluster running afterwards (`ops/stack.sh down` with its
environment stops it)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.chaos.check import check
from bench.chaos.cluster import Cluster, ClusterConfig
from bench.chaos.fault import Target
from bench.chaos.load import Load
from bench.chaos.scenarios import SCENARIOS, Outcome, run
from bench.chaos.views import check_views
from bench.chaos.windows import WindowVerdict, check_windows
from bench.provenance import provenance
from streams.contexts.registry import get_context
from streams.kafka.runtime import ContextRuntime
from streams.wire.topics import ContextTopics, GroupNames
from tests.integration.windows.fleet import Fleet
from tests.integration.workers import Deployment, wait_until


def table(outcomes: list[Outcome]) -> str:
    """The scenarios as a text table."""
    head = (
        f"{'scenario':<12} {'nodes':<8} {'healed s':>9} {'recovered s':>12} {'max latency s':>14} "
        f"{'slow/probes':>12}"
    )
    lines = [head, "-" * len(head)]
    for o in outcomes:
        latency = "no result" if o.max_latency_s is None else f"{o.max_latency_s:.2f}"
        lines.append(
            f"{o.scenario:<12} {','.join(map(str, o.nodes)):<8} {o.healed_s:>9.1f} {o.recovered_s:>12.1f} "
            f"{latency:>14} {f'{o.slow_probes}/{o.probes}':>12}"
        )
    return "\n".join(lines)


def window_line(verdict: WindowVerdict) -> str:
    """One aggregation's window check as a line."""
    refused = ", ".join(f"{n} {reason}" for reason, n in sorted(verdict.dead_lettered.items())) or "none"
    return (
        f"windows {verdict.aggregation}: {verdict.readings} readings, "
        f"{verdict.windows} windows in the replay, "
        f"dead-lettered: {refused}; {'equal the replay' if not verdict.problems else 'DIFFER'}"
    )


class DeployedWorker:
    """The worker under load, for the scenarios that kill it (`bench.chaos.fault.Worker`)."""

    def __init__(self, dep: Deployment, worker_id: str) -> None:
        self.dep = dep
        self.worker_id = worker_id

    def kill(self) -> None:
        proc = self.dep.workers[self.worker_id]
        proc.kill()
        proc.wait(timeout=60)

    def start(self) -> None:
        self.dep.start(self.worker_id)
        self.dep.wait_healthy(self.worker_id, timeout=300)


def main() -> int:
    """Run the suite; the cluster is stopped afterwards whatever happened (unless
    `CHAOS_KEEP_CLUSTER=1`)."""
    config = ClusterConfig()
    os.environ.update(config.env())
    cluster = Cluster(config)
    try:
        return suite(cluster)
    finally:
        if os.environ.get("CHAOS_KEEP_CLUSTER") != "1":
            cluster.stack("down", "registry", "kafka")


def suite(cluster: Cluster) -> int:
    """Start the cluster and the worker, run the scenarios, check; 1 on any problem."""
    names = [n for n in os.environ.get("CHAOS_SCENARIOS", ",".join(SCENARIOS)).split(",") if n]
    started = time.monotonic()
    cluster.up()
    result: dict[str, Any] = {"provenance": provenance(), "scenarios_asked": names}
    result["cluster_up_s"] = round(time.monotonic() - started, 1)
    with tempfile.TemporaryDirectory(prefix="chaos-") as directory:
        dep = Deployment(
            prefix=f"chaos{uuid.uuid4().hex[:8]}", data_dir=Path(directory),
            extra_env={"STREAMS_CONTEXTS": "orders,devices", "STREAMS_SINKS": "0"},
        )  # fmt: skip
        dep.start("w1")
        try:
            dep.wait_healthy("w1")
            settings = dep.settings()
            groups = GroupNames(settings.app_id, settings.topic_prefix, "orders")
            target = Target(
                events_topic=ContextTopics("orders", settings.topic_prefix).events,
                transactional_id=groups.transactional_id("w1"),
                worker=DeployedWorker(dep, "w1"),
            )
            devices = [f"chaos-device-{i}" for i in range(int(os.environ.get("CHAOS_DEVICES", "40")))]
            Fleet(settings, dep.url("w1")).register(devices, silence_after_s=3600)
            load = Load(
                settings, rate=float(os.environ.get("CHAOS_RATE", "50")), devices=devices,
                telemetry_rate=float(os.environ.get("CHAOS_TELEMETRY_RATE", "200")),
            )  # fmt: skip
            load.start()
            load_started = time.monotonic()
            wait_until(lambda: any(p.latency_s for p in load.probes), "the first probe's result", timeout=180)
            outcomes = []
            for name in names:
                print(f"[chaos] scenario {name}", file=sys.stderr, flush=True)
                try:
                    outcomes.append(run(name, cluster, target, load))
                except Exception as exc:  # the other scenarios and the checker still run
                    traceback.print_exc()
                    failure = f"the scenario raised {type(exc).__name__}: {exc}"
                    outcomes.append(Outcome(name, [], 0.0, 0.0, None, 0, 0, 0, problems=[failure]))
                print(f"[chaos] {outcomes[-1]}", file=sys.stderr, flush=True)
            load.stop()
            worker_alive = dep.workers["w1"].poll() is None
            verdict = check(settings, load.seen)
            runtimes = {n: ContextRuntime.connect(settings, get_context(n)) for n in ("orders", "devices")}
            windows = check_windows(settings, runtimes["devices"])  # first: its last windows add events
            view_problems = [p for runtime in runtimes.values() for p in check_views(settings, runtime)]
        finally:
            dep.stop_all()
            worker_log = (Path(directory) / "w1.log").read_text(errors="replace")
    result["worker_log"] = {
        "session_restarts": worker_log.count("failed; restarting"),
        "ambiguous_outcomes": worker_log.count("AmbiguousOutcome"),
        "stuck_clients": worker_log.count("StuckClient"),
        "batches_aborted": worker_log.count("batch aborted"),
    }
    result.update(
        outcomes=[o.row() for o in outcomes], check={**asdict(verdict), "passed": verdict.passed},
        views=view_problems, windows=[asdict(w) for w in windows], readings_sent=load.readings_sent,
        commands_sent=len(load.sent), load_errors=load.errors, worker_alive=worker_alive,
        stuck_load_threads=load.stuck,
        probes=[[round(p.sent_at - load_started, 1), p.latency_s and round(p.latency_s, 2)]
                for p in load.probes],
        seconds=round(time.monotonic() - started, 1),
    )  # fmt: skip
    failed = (
        not verdict.passed or view_problems or load.errors or not worker_alive
        or any(w.problems for w in windows)
        or any(o.timed_out_probes or o.problems for o in outcomes)
    )  # fmt: skip
    result["passed"] = not failed
    print(table(outcomes))
    print(
        f"\ncheck: {verdict.accepted} accepted commands, {verdict.results} results, {verdict.events} events, "
        f"{verdict.aborted_records} aborted records in the log, {verdict.seen_by_reader} records seen by the "
        f"concurrent read_committed reader; {'PASSED' if verdict.passed else 'FAILED'}"
    )
    scenario_problems = [f"{o.scenario}: {p}" for o in outcomes for p in o.problems]
    print(f"views equal the fold of the log: {'no' if view_problems else 'yes'}")
    for w in windows:
        print(window_line(w))
    window_problems = [f"windows {w.aggregation}: {p}" for w in windows for p in w.problems]
    for problem in [*verdict.problems, *view_problems, *window_problems, *load.errors, *scenario_problems]:
        print(f"  problem: {problem}")
    out = Path(os.environ.get("CHAOS_OUT", "bench/results"))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"chaos-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2))
    path.with_name(f"{path.stem}-worker.log").write_text(worker_log)
    print(f"worker: {result['worker_log']}; load threads that did not stop: {load.stuck or 'none'}")
    print(f"written {path} ({result['seconds']:.0f}s in all)")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        code = main()
    except BaseException:  # the cluster is stopped by then (main's finally)
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # everything is written and the cluster stopped: leave without the interpreter's shutdown,
    # which joined what the run abandoned (a thread left in a hung client call, the librdkafka
    # handles of clients whose cluster is gone) and once hung there after a finished run
    os._exit(code)
