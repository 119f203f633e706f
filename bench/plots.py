"""The plots of BENCHMARKS.md, drawn from result files (matplotlib, in the `test` extra).

Two images per `make bench` result file, beside it in bench/results/: the throughput of every
scenario side by side (`<stem>-throughput.png`) and the latency distributions as CDFs
(`<stem>-latency.png`: command → result at the two offered rates, and the HTTP benchmark's
alone and concurrent figures when an HTTP result file is given).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

THROUGHPUT = (
    ("a. bare loop", "a_ceiling_rps"),
    ("a'. bare loop, fan-out", "a_fanout_rps"),
    ("b. write path, exactly once", "b_write_path_cps"),
    ("c. write path, at least once", "c_write_path_cps"),
    ("e. seed design (PostgreSQL)", "e_seed_cps"),
    ("f. eventsourcing (PostgreSQL)", "f_eventsourcing_cps"),
    ("g. Quix Streams", "g_quix_cps"),
    ("h. Kafka Streams", "h_kstreams_cps"),
    ("scale-out, 2 processes", "scale_2_cps"),
    ("d. live view", "d_live_view_events_per_s"),
    ("d. replay", "d_replay_events_per_s"),
    ("d. raw consume", "d_raw_events_per_s"),
)
"""(label, key) of the bars, in this order: input records, commands or events per second."""


class Curve(NamedTuple):
    """One latency distribution: its label and its points (ms, ascending: min, p1..p99, max)."""

    label: str
    points_ms: list[float]


def throughput_bars(result: dict[str, Any]) -> list[tuple[str, float]]:
    """(label, per second) of every throughput figure the result file has, in THROUGHPUT's order."""
    return [(label, float(result[key])) for label, key in THROUGHPUT if result.get(key)]


def latency_curves(result: dict[str, Any], http: dict[str, Any] | None) -> list[Curve]:
    """The distributions to draw: the bench's command → result ones, then the HTTP ones."""
    curves = [
        Curve(f"command → result at {rate}/s", points)
        for rate, points in result.get("latency_cdf_ms", {}).items()
    ]
    if http is not None:
        for side in ("alone", "concurrent"):
            if "cdf_ms" in http.get(side, {}):
                who = "one client" if side == "alone" else f"{http.get('connections', '?')} clients"
                curves.append(Curve(f"HTTP command, {who}", http[side]["cdf_ms"]))
    return curves


def draw(result: dict[str, Any], http: dict[str, Any] | None, stem: Path) -> list[Path]:
    """Draw both images for the result file whose path without `.json` is `stem`; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = f"{stem.name}: {result.get('commands', 0):,} commands, load {_load(result)}"
    written: list[Path] = []
    bars = throughput_bars(result)
    if bars:
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(bars) + 1.5))
        labels, values = zip(*bars, strict=True)
        ax.barh(range(len(values)), values, color="tab:blue")
        ax.set_yticks(range(len(values)), labels)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("per second (log scale): records, commands or events")
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,.0f}", va="center", fontsize="small")
        ax.set_title(title, fontsize="medium")
        fig.tight_layout()
        written.append(_save(fig, stem.with_name(f"{stem.name}-throughput.png")))
    curves = latency_curves(result, http)
    if curves:
        fig, ax = plt.subplots(figsize=(9, 5))
        for curve in curves:
            fractions = [0.0, *(i / 100 for i in range(1, 100)), 1.0]
            ax.plot(curve.points_ms, fractions, label=curve.label, drawstyle="steps-post")
        ax.set_xscale("log")
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("fraction of commands")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
        ax.set_title(title, fontsize="medium")
        fig.tight_layout()
        written.append(_save(fig, stem.with_name(f"{stem.name}-latency.png")))
    return written


def _load(result: dict[str, Any]) -> str:
    start, end = result.get("load_avg_at_start"), result.get("load_avg_at_end")
    return "?" if start is None or end is None else f"{start:.1f} → {end:.1f}"


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=90, metadata={"Software": None})
    plt.close(fig)
    return path
