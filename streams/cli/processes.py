"""`streams worker --processes N`: N worker processes on one host, one per core.

A worker is one Python process, so one core: its Python work (decoding, deciding, encoding)
holds the GIL. N processes are N members of the same consumer groups; Kafka spreads the
partitions over them. Each is a full worker with its own identity:

- web port `STREAMS_WEB_PORT + i` (any of them answers any query: they forward to each other);
- worker id `<STREAMS_WORKER_ID or host-port>` of its own port, so its own transactional id and
  its own RocksDB directory under `STREAMS_DATA_DIR`;
- advertised URL: `STREAMS_ADVERTISED_URL` with `{port}` replaced by its port (without the
  placeholder, N > 1 is refused: the workers would advertise one address).

The launcher forwards SIGINT/SIGTERM to every process and waits for them; a process that exits
on its own is started again after a back-off (1 s, doubling to 30 s, reset after a minute up).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from streams.config import Settings

RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0
STABLE_S = 60.0


class LauncherError(ValueError):
    """A launcher setting that cannot work (the message says which and why)."""


@dataclass(frozen=True)
class ProcessSpec:
    """One worker process: its index and the environment that makes it distinct."""

    index: int
    env: dict[str, str]


def process_specs(settings: Settings, processes: int, environ: dict[str, str]) -> list[ProcessSpec]:
    """The environment of each of `processes` workers (see the module docstring)."""
    if processes < 1:
        raise LauncherError(f"--processes must be at least 1, got {processes}")
    if processes == 1:
        return [ProcessSpec(0, dict(environ))]
    advertised = settings.advertised_url
    if advertised and "{port}" not in advertised:
        raise LauncherError(
            "STREAMS_ADVERTISED_URL must contain {port} with --processes > 1 "
            f"(each process advertises its own port), got {advertised!r}"
        )
    specs = []
    for i in range(processes):
        port = settings.web_port + i
        env = dict(environ, STREAMS_WEB_PORT=str(port))
        if settings.worker_id:
            env["STREAMS_WORKER_ID"] = f"{settings.worker_id}-{i}"
        if advertised:
            env["STREAMS_ADVERTISED_URL"] = advertised.replace("{port}", str(port))
        specs.append(ProcessSpec(i, env))
    return specs


@dataclass
class _Running:
    spec: ProcessSpec
    process: subprocess.Popen[bytes]
    started: float
    backoff: float = RESTART_MIN_S
    restart_at: float | None = None
    restarts: int = field(default=0)


def supervise(
    specs: Sequence[ProcessSpec],
    command: Sequence[str],
    log: Callable[[str], None],
    *,
    poll_s: float = 0.5,
) -> int:
    """Run `command` once per spec until a signal asks them to stop; restart a process that
    exits on its own. Returns 0 after a requested stop, else the last exit status seen."""
    stopping: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    running = [_start(spec, command, log) for spec in specs]
    try:
        while not stopping:
            time.sleep(poll_s)
            now = time.monotonic()
            for r in running:
                _tend(r, command, log, now)
        log(f"stopping {len(running)} worker processes")
        for r in running:
            if r.process.poll() is None:
                r.process.send_signal(stopping[0])
        status = 0
        deadline = time.monotonic() + 60
        for r in running:
            try:
                r.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log(f"worker {r.spec.index} did not stop within 60 s: killed")
                r.process.kill()
                r.process.wait()
                status = 1
        return status
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _start(spec: ProcessSpec, command: Sequence[str], log: Callable[[str], None]) -> _Running:
    process = subprocess.Popen(list(command), env=spec.env)
    log(f"worker {spec.index}: pid {process.pid}, port {spec.env.get('STREAMS_WEB_PORT', '?')}")
    return _Running(spec, process, time.monotonic())


def _tend(r: _Running, command: Sequence[str], log: Callable[[str], None], now: float) -> None:
    """Restart one exited process after its back-off."""
    if r.restart_at is None:
        code = r.process.poll()
        if code is None:
            if now - r.started > STABLE_S:
                r.backoff = RESTART_MIN_S
            return
        r.restart_at = now + r.backoff
        log(f"worker {r.spec.index} exited with {code}; restarting in {r.backoff:.0f} s")
        r.backoff = min(r.backoff * 2, RESTART_MAX_S)
        return
    if now >= r.restart_at:
        fresh = _start(r.spec, command, log)
        r.process, r.started, r.restart_at = fresh.process, fresh.started, None
        r.restarts += 1


def worker_command(loglevel: str) -> list[str]:
    """The command of one worker process."""
    return [sys.executable, "-m", "faust", "-A", "streams.app", "worker", "-l", loglevel]


def environ() -> dict[str, str]:
    """This process's environment (a seam for tests)."""
    return dict(os.environ)
