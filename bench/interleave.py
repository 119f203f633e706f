"""`python -m bench.interleave OLD NEW`: the offline harness of two source trees, run alternately.

The machine is shared and noisy, so an optimisation is judged by pairs of runs of the old and the
new code taken back to back (old, new, old, new…), never by one run of each. OLD and NEW are
checkouts of this repository (e.g. `git worktree add /tmp/old HEAD~1`); each run is a fresh
`python -m bench.offline` with that tree first on `PYTHONPATH`, in this interpreter (the same
dependencies). Prints every pair and the medians as JSON.

`--harness windows` runs `bench/windows_offline.py` of *this* checkout instead (as a script, so
that an older tree without it can be measured too) against each tree's `streams`: the window
stage's CPU per reading.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from bench.provenance import provenance, write_result

HARNESSES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "offline": (["-m", "bench.offline"], ("write_us_per_command", "read_us_per_event")),
    "windows": (["-P", str(Path(__file__).with_name("windows_offline.py"))], ("us_per_reading",)),
}
"""Per harness: the interpreter's arguments, and the figures compared."""


def run_offline(tree: Path, env: dict[str, str], harness: str = "offline") -> dict[str, Any]:
    """One run of a harness (`bench.offline` by default) on the code in `tree`."""
    done = subprocess.run(
        [sys.executable, *HARNESSES[harness][0]],
        cwd=tree,
        env={**env, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout))


@click.command()
@click.argument("old", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("new", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--pairs", default=3, show_default=True, help="old/new pairs to run")
@click.option("--harness", type=click.Choice(sorted(HARNESSES)), default="offline", show_default=True)
@click.option(
    "--save",
    default="",
    help="also write the figures as bench/results/SAVE-<time>.json (INTERLEAVE_OUT: the directory)",
)
@click.option("--what", default="", help="the change measured, one line (kept in the saved file)")
def main(old: Path, new: Path, pairs: int, harness: str, save: str, what: str) -> None:
    """Run OLD and NEW alternately PAIRS times; print each pair and the medians."""
    env = dict(os.environ)
    figures_of = HARNESSES[harness][1]
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    for i in range(pairs):
        for label, tree in (("old", old), ("new", new)):
            figures = run_offline(tree.resolve(), env, harness)
            runs[label].append(figures)
            shown = ", ".join(f"{k} {figures[k]:.1f}" for k in figures_of)
            click.echo(f"pair {i + 1} {label}: {shown}", err=True)
    summary = {
        label: {k: statistics.median(r[k] for r in results) for k in figures_of}
        for label, results in runs.items()
    }
    ratio = {k: summary["old"][k] / summary["new"][k] for k in figures_of}
    result = {"runs": runs, "median": summary, "old_over_new": ratio}
    click.echo(json.dumps(result, indent=2))
    if save:
        trees = {label: {"commit": _commit(tree)} for label, tree in (("old", old), ("new", new))}
        saved = {"harness": harness, "what": what, "pairs": pairs, **trees, **result, **provenance()}
        write_result(save, saved, "INTERLEAVE_OUT")


def _commit(tree: Path) -> str:
    done = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
