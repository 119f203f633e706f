"""`python -m bench.interleave OLD NEW`: the offline harness of two source trees, run alternately.

The machine is shared and noisy, so an optimisation is judged by pairs of runs of the old and the
new code taken back to back (old, new, old, new…), never by one run of each. OLD and NEW are
checkouts of this repository (e.g. `git worktree add /tmp/old HEAD~1`); each run is a fresh
`python -m bench.offline` with that tree first on `PYTHONPATH`, in this interpreter (the same
dependencies). Prints every pair and the medians as JSON.
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

FIGURES = ("write_us_per_command", "read_us_per_event")


def run_offline(tree: Path, env: dict[str, str]) -> dict[str, Any]:
    """One `bench.offline` run of the code in `tree`."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.offline"],
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
def main(old: Path, new: Path, pairs: int) -> None:
    """Run OLD and NEW alternately PAIRS times; print each pair and the medians."""
    env = dict(os.environ)
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    for i in range(pairs):
        for label, tree in (("old", old), ("new", new)):
            figures = run_offline(tree.resolve(), env)
            runs[label].append(figures)
            shown = ", ".join(f"{k} {figures[k]:.1f}" for k in FIGURES)
            click.echo(f"pair {i + 1} {label}: {shown}", err=True)
    summary = {
        label: {k: statistics.median(r[k] for r in results) for k in FIGURES}
        for label, results in runs.items()
    }
    ratio = {k: summary["old"][k] / summary["new"][k] for k in FIGURES}
    click.echo(json.dumps({"runs": runs, "median": summary, "old_over_new": ratio}, indent=2))


if __name__ == "__main__":
    main()
