"""Sample records of every schema version: scaffold missing ones, refresh their expected upcasts.

    .venv/bin/python -m tests.compat.samples_tool            # scaffold missing sample files
    .venv/bin/python -m tests.compat.samples_tool --expect   # (re)write each sample's "latest"

A sample file `tests/compat/samples/<ctx>/<Type>.v<N>.json` is a list of
`{"record": <a record as a producer of vN wrote it>, "latest": <what reading it must give>}`.
`record` is history: once a version is released, never edit it. `latest` is what the current
code turns it into (through Avro resolution and upcasters); `--expect` rewrites it from the
code, so review that diff like any other behaviour change. The compatibility gate
(`streams.testing.conformance`, run by tests/unit/test_versioning.py) fails when a sample is
missing, no longer decodes, decodes to something else than `latest`, or breaks `evolve` or a
projection.
"""

from __future__ import annotations

import sys
from pathlib import Path

from streams.contexts.registry import contexts
from streams.testing import scaffold_samples

SAMPLES = Path(__file__).resolve().parent / "samples"


def main(argv: list[str]) -> int:
    for context in contexts().values():
        for path in scaffold_samples(context, SAMPLES / context.name, expect="--expect" in argv):
            print(f"wrote {path.relative_to(SAMPLES)}: review it (a scaffold needs a realistic record)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
