"""`python -m bench.benchmarks_md`: BENCHMARKS.md's tables and plots, and the README's benchmark
figures, generated from the result files committed in bench/results/.

Every generated block sits between two marker comments, `<!-- generated: NAME ... -->` and
`<!-- end: NAME -->`; the text around them is prose and is kept as it is. The figures come from
the newest result file of each kind (`bench-<time>.json` of `make bench`, `http-`, `realtime-`,
`failover-`); the plots are drawn beside the `make bench` file (bench/plots.py).
`--check` changes nothing and exits 1 when a document differs from what would be generated
(tests/unit/bench/test_benchmarks_md.py does the same), so no figure can be typed by hand.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.plots import draw
from bench.report import rows as figure_rows

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOCUMENTS = (ROOT / "BENCHMARKS.md", ROOT / "README.md")
BLOCK = re.compile(
    r"(<!-- generated: (?P<name>[\w-]+)[^>]*-->\n)(?P<body>.*?)(<!-- end: (?P=name) -->)", re.S
)
STAMPED = re.compile(r"^(?P<kind>[a-z][a-z-]*?)-(?P<stamp>\d{8}T\d{6})\.json$")
PROVENANCE = (
    ("commit", "commit"),
    ("tree had uncommitted changes", "tree_dirty"),
    ("Python", "python"),
    ("librdkafka", "librdkafka"),
    ("confluent-kafka", "confluent_kafka"),
    ("Kafka (broker)", "kafka"),
    ("JDK", "jdk"),
    ("Quix Streams (g)", "quixstreams"),
    ("cores", "cpus"),
    ("load average (1 min)", "load_avg"),
    ("time (UTC)", "at"),
)


@dataclass(frozen=True)
class ResultFile:
    """One committed result file: its path (relative to the repository) and its JSON."""

    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        """The file name, as the documents cite it."""
        return self.path.name


def result_files(directory: Path = RESULTS) -> dict[str, list[Path]]:
    """The time-stamped result files under `directory` by kind (`bench`, `http`, ...), oldest first."""
    kinds: dict[str, list[Path]] = {}
    for path in sorted(directory.glob("*.json")):
        if found := STAMPED.match(path.name):
            kinds.setdefault(found["kind"], []).append(path)
    return kinds


def latest(kind: str, directory: Path = RESULTS) -> ResultFile | None:
    """The newest result file of `kind`, or None."""
    paths = result_files(directory).get(kind)
    if not paths:
        return None
    return ResultFile(paths[-1], json.loads(paths[-1].read_text()))


def table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    """A Markdown table; the columns after the first are right-aligned."""
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def provenance_block(result: ResultFile) -> str:
    """Where and on what the run was measured: its provenance at the start and at the end."""
    start = result.data.get("provenance_at_start", {})
    end = result.data.get("provenance_at_end", {})
    body = [(label, _shown(start.get(key)), _shown(end.get(key))) for label, key in PROVENANCE]
    d = result.data
    sizes = (
        f"{d.get('commands', 0):,} commands over {d.get('aggregates', 0):,} aggregates "
        f"({d.get('record_bytes', 0):.0f} B each), {d.get('partitions', '?')} partitions, "
        f"b/g/h rounds: {len(d.get('write_path_rounds', []))}, complete: {_shown(d.get('complete'))}"
    )
    return f"From `bench/results/{result.name}`: {sizes}.\n\n" + table(("", "at start", "at end"), body)


def figures_block(result: ResultFile) -> str:
    """Every figure of the run (bench/report.py's rows, then the telemetry rows)."""
    from bench.telemetry import rows as telemetry_rows

    body = [*figure_rows(result.data), *telemetry_rows(result.data)]
    rounds = [
        (f"round {i + 1}: order", " → ".join(r.get("order", [])))
        for i, r in enumerate(result.data.get("write_path_rounds", []))
    ]
    return table(("measure", "value"), [*body, *rounds])


def targets_block(result: ResultFile) -> str:
    """The targets as the run judged them (its `targets` list)."""
    verdict = {True: "yes", False: "**no**", None: "reported"}
    body = [(t["target"], t["value"], verdict[t["met"]]) for t in result.data.get("targets", [])]
    return table(("target", "measured", "met"), body) if body else "The run judged no target.\n"


def plots_block(result: ResultFile, images: list[str]) -> str:
    """The images drawn from the run, as Markdown image links."""
    if not images:
        return "No plot: matplotlib was not installed when this was generated.\n"
    return "".join(f"![{name}](bench/results/{name})\n" for name in images) + (
        f"\nDrawn from `bench/results/{result.name}` by `python -m bench.benchmarks_md`.\n"
    )


def http_block(result: ResultFile) -> str:
    """The HTTP benchmark's p50/p99, alone and under concurrent connections."""
    d = result.data

    def row(label: str, side: Mapping[str, Any]) -> tuple[str, ...]:
        return (label, f"{side['n']:,}", f"{side['p50_ms']:,.1f} ms", f"{side['p99_ms']:,.1f} ms")

    body = [row("one client, one command at a time", d["alone"])]
    body.append(row(f"{d.get('connections', '?')} concurrent connections", d["concurrent"]))
    return _source(result) + table(("", "commands", "p50", "p99"), body)


def realtime_block(result: ResultFile) -> str:
    """The real-time benchmark's phases: delivery latency, threads and RSS."""
    d = result.data
    mib = 2**20
    body: list[tuple[str, ...]] = []
    for key, phase in d.items():
        if not (key.startswith("sse_") and isinstance(phase, dict)):
            continue
        label = _phase_label(key)
        to_all = (
            f"{phase['to_all_p50_ms']:,.0f} / {phase['to_all_p99_ms']:,.0f} ms"
            if "to_all_p99_ms" in phase
            else ""
        )
        each = (
            f"{phase['per_subscriber_p50_ms']:,.0f} / {phase['per_subscriber_p99_ms']:,.0f} ms"
            if "per_subscriber_p99_ms" in phase
            else ""
        )
        rss = f"{phase['rss'] / mib:,.0f} MiB" if "rss" in phase else ""
        if "rss_per_subscriber_bytes" in phase:
            rss += f" ({phase['rss_per_subscriber_bytes'] / 1000:,.1f} KB per subscriber)"
        body.append((label, str(phase.get("threads", "")), rss, to_all, each))
    after = d.get("after_disconnect", {})
    body.append(
        (
            "all disconnected",
            "",
            f"back to baseline after {_shown(after.get('rss_back_to_baseline_s'))} s",
            f"threads back after {_shown(after.get('threads_back_to_baseline_s'))} s",
            "",
        )
    )
    header = ("subscribers", "threads", "RSS", "to all p50 / p99", "per subscriber p50 / p99")
    return _source(result) + table(header, body)


def _phase_label(key: str) -> str:
    """`sse_1000_ws_100_idle` -> `1,000 SSE + 100 WebSocket, idle`."""
    idle = key.endswith("_idle")
    parts = key.removesuffix("_idle").removeprefix("sse_").split("_ws_")
    label = f"{int(parts[0]):,} SSE" + (f" + {int(parts[1]):,} WebSocket" if len(parts) > 1 else "")
    return label + (", idle" if idle else "")


def failover_block(result: ResultFile) -> str:
    """A view's failover: before (fold from offset 0) and after (restore from the view topic)."""
    d = result.data
    config = d.get("config", {})
    body: list[tuple[str, str, str]] = [
        (
            side,
            f"{d[side].get('seconds_from_start', 0):,.1f} s",
            f"{d[side].get('seconds_from_assignment', 0):,.1f} s",
        )
        for side in ("before", "after")
        if side in d
    ]
    body.append(("speed-up from assignment", "", f"{_shown(d.get('speed_up_from_assignment'))} x"))
    intro = (
        f"{config.get('events', 0):,} events over {config.get('aggregates', 0):,} orders, "
        f"then a tail of {config.get('tail', 0):,}. "
    )
    return intro + _source(result) + table(("projector", "from start", "from assignment"), body)


def index_block(directory: Path = RESULTS) -> str:
    """Every kind of committed result file: how many, the newest, its commit and load."""
    body = []
    for kind, paths in sorted(result_files(directory).items()):
        data = json.loads(paths[-1].read_text())
        prov = data.get("provenance_at_start") or data.get("provenance") or {}
        commit = str(prov.get("commit", "-"))[:10]
        load = data.get("load_avg_at_start", prov.get("load_avg"))
        end = data.get("load_avg_at_end")
        loads = f"{_shown(load)} → {_shown(end)}"
        body.append((kind, str(len(paths)), f"`{paths[-1].name}`", commit, loads))
    return table(("kind", "files", "newest", "commit", "load at start → end"), body)


def optimisations_block(directory: Path = RESULTS) -> str:
    """The optimisation log: every interleaved old/new comparison (`python -m bench.interleave
    OLD NEW --save NAME`, files `<NAME>-pairs-<time>.json`), oldest first."""
    body = []
    for kind, paths in sorted(result_files(directory).items()):
        if not kind.endswith("-pairs"):
            continue
        for path in paths:
            d = json.loads(path.read_text())
            for figure, ratio in d.get("old_over_new", {}).items():
                old, new = d["median"]["old"][figure], d["median"]["new"][figure]
                body.append(
                    (
                        f"`{path.name}`",
                        d.get("what") or "-",
                        f"{d['old']['commit'][:10]} → {d['new']['commit'][:10]}",
                        f"{figure}: {old:,.1f} → {new:,.1f}",
                        f"{ratio:.2f}",
                        str(d.get("pairs", "?")),
                        _shown(d.get("load_avg")),
                    )
                )
    if not body:
        return "No committed comparison yet.\n"
    header = ("result file", "change", "old → new commit", "median", "old/new", "pairs", "load")
    return table(header, body)


def readme_block(result: ResultFile) -> str:
    """The README's few headline figures, from the same run as BENCHMARKS.md's."""
    d = result.data
    picks = [
        ("b. our write path, exactly once", "b_write_path_cps", "{:,.0f} commands/s"),
        ("g. Quix Streams, same rules", "g_quix_cps", "{:,.0f} commands/s"),
        ("h. Kafka Streams, same rules", "h_kstreams_cps", "{:,.0f} commands/s"),
        ("e. the seed's PostgreSQL design", "e_seed_cps", "{:,.0f} commands/s"),
        ("command → result p99 at the lower rate", "latency_p99_ms", "{:,.0f} ms"),
    ]
    body = [(label, fmt.format(d[key])) for label, key, fmt in picks if key in d]
    start = d.get("provenance_at_start", {})
    note = (
        f"From `bench/results/{result.name}` ({d.get('commands', 0):,} commands over "
        f"{d.get('aggregates', 0):,} aggregates, commit `{str(start.get('commit', '?'))[:10]}`, "
        f"{start.get('cpus', '?')} cores, load average {_shown(d.get('load_avg_at_start'))} → "
        f"{_shown(d.get('load_avg_at_end'))}); every figure and its method in "
        "[BENCHMARKS.md](BENCHMARKS.md).\n\n"
    )
    return note + table(("measure", "value"), body)


def _source(result: ResultFile) -> str:
    start = result.data.get("provenance_at_start", {})
    return (
        f"From `bench/results/{result.name}` (commit `{str(start.get('commit', '?'))[:10]}`, load average "
        f"{_shown(start.get('load_avg'))} → {_shown(result.data.get('load_avg_at_end'))}).\n\n"
    )


def blocks(directory: Path = RESULTS, images: list[str] | None = None) -> dict[str, str]:
    """Every generated block by name; a kind with no result file gives a line saying so."""
    out: dict[str, str] = {
        "result-files": index_block(directory),
        "optimisations": optimisations_block(directory),
    }
    missing = "No committed result file of this kind yet.\n"
    bench = latest("bench", directory)
    per_bench: dict[str, Callable[[ResultFile], str]] = {
        "bench-run": provenance_block,
        "bench-figures": figures_block,
        "bench-targets": targets_block,
        "readme": readme_block,
    }
    for name, render in per_bench.items():
        out[name] = render(bench) if bench else missing
    out["bench-plots"] = plots_block(bench, plot_names(bench, directory, images)) if bench else missing
    for kind, render in (("http", http_block), ("realtime", realtime_block), ("failover", failover_block)):
        found = latest(kind, directory)
        out[kind] = render(found) if found else missing
    return out


def plot_names(bench: ResultFile, directory: Path, images: list[str] | None) -> list[str]:
    """The plots of `bench` that exist (or were just drawn), by file name."""
    if images is not None:
        return images
    stem = bench.path.stem
    return [
        f"{stem}-{what}.png"
        for what in ("throughput", "latency")
        if (directory / f"{stem}-{what}.png").exists()
    ]


def fill(text: str, generated: Mapping[str, str]) -> str:
    """`text` with every generated block replaced; a block of unknown name is an error."""

    def one(found: re.Match[str]) -> str:
        name = found["name"]
        if name not in generated:
            raise KeyError(f"no generator for the block {name!r}")
        return found.group(1) + generated[name] + found.group(4)

    return BLOCK.sub(one, text)


def main(argv: list[str]) -> int:
    """Generate (draw the plots, rewrite the documents), or with `--check` only compare."""
    check = "--check" in argv
    images: list[str] | None = None
    bench = latest("bench")
    if bench and not check:
        http = latest("http")
        drawn = draw(bench.data, http.data if http else None, bench.path.with_suffix(""))
        images = [p.name for p in drawn]
    generated = blocks(RESULTS, images)
    stale = []
    for document in DOCUMENTS:
        before = document.read_text()
        after = fill(before, generated)
        if after != before:
            stale.append(document.name)
            if not check:
                document.write_text(after)
    if check and stale:
        print(f"out of date: {', '.join(stale)} (python -m bench.benchmarks_md)", file=sys.stderr)
        return 1
    print(f"{'checked' if check else 'generated'}: {', '.join(d.name for d in DOCUMENTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
