"""Helper processes that build a view version beside the workers (`streams replay --processes N`).

A replay's new version is built by the stages every worker's read side starts in the version's
consumer groups, in threads sharing one interpreter lock. Each helper is one more member of
those groups in a process of its own, so the log's partitions are folded on more cores. The
helpers leave before the switch: their partitions go back to the workers, which restore them
from the version's compacted topic, as after any rebalance.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from streams.config import Settings
from streams.core.decider import BoundedContext
from streams.kafka import clients
from streams.kafka.runtime import ContextRuntime

log = logging.getLogger(__name__)

CLIENT_PREFIX = "replay-helper-"
"""How a helper's consumers name themselves in the groups (they serve no queries)."""


@dataclass(frozen=True)
class HelperJob:
    """What one helper process builds."""

    settings: Settings
    context: BoundedContext[Any]
    """The context itself (pickled by the spawn: plain data and module-level functions)."""
    view: str
    version: int
    index: int
    directory: str


def _build(job: HelperJob, stop: Event) -> None:
    """A helper's process: run the version's stages until told to stop, then leave the groups."""
    from streams.read.readside import start_version

    logging.basicConfig(level=logging.INFO, format=f"helper {job.index}: %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry request otherwise
    runtime = ContextRuntime.connect(job.settings, job.context)
    view = next(v for v in job.context.views if v.name == job.view)
    repartitioner, projector = start_version(
        job.settings, runtime, view, job.version,
        directory=Path(job.directory), client_id=f"{CLIENT_PREFIX}{job.index}",
    )  # fmt: skip
    stop.wait()
    if repartitioner is not None:
        repartitioner.stop()
    projector.stop()
    shutil.rmtree(job.directory, ignore_errors=True)


@dataclass
class ReplayHelpers:
    """N helper processes building one view version; `stop` hands their partitions back."""

    settings: Settings
    runtime: ContextRuntime
    view: str
    version: int
    repartitioned: bool
    processes: list[BaseProcess] = field(default_factory=list)
    _stop: Event | None = None
    _root: str = ""
    _reported: set[int] = field(default_factory=set)
    _admin: AdminClient | None = None
    joined: int = 0
    """Helpers that became members of the version's groups (those that died before are not)."""

    def start(self, count: int, timeout_s: float = 60.0) -> None:
        """Start `count` helpers (spawned: no state of this process is inherited) and wait until
        each is a member of the version's groups (or has died), so that the helpers take part
        however soon the workers would catch up alone."""
        if count <= 0:
            return
        spawn = multiprocessing.get_context("spawn")
        self._stop = spawn.Event()
        self._root = tempfile.mkdtemp(prefix=f"streams-replay-{self.view}-v{self.version}-")
        for index in range(count):
            directory = f"{self._root}/{index}"
            job = HelperJob(self.settings, self.runtime.context, self.view, self.version, index, directory)
            process = spawn.Process(target=_build, args=(job, self._stop), name=f"replay-helper-{index}")
            process.start()
            self.processes.append(process)
        self._wait_joined(count, timeout_s)

    def failed(self) -> list[int]:
        """Exit codes of helpers that ended before being told to stop (each reported once)."""
        ended = [p for p in self.processes if p.exitcode not in (None, 0) and p.pid not in self._reported]
        self._reported.update(p.pid for p in ended if p.pid is not None)
        return [p.exitcode for p in ended if p.exitcode is not None]

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop every helper and wait until the version's groups have no helper left in them
        (their partitions are the workers' again)."""
        if self._stop is None:
            return
        self._stop.set()
        for process in self.processes:
            process.join(timeout_s)
            if process.is_alive():
                process.kill()
        shutil.rmtree(self._root, ignore_errors=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._members() == 0:
                return
            time.sleep(0.5)
        log.warning("replay helpers still listed in the groups of %s v%d after %.0f s", self.view,
                    self.version, timeout_s)  # fmt: skip

    def _wait_joined(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            alive = sum(1 for p in self.processes if p.is_alive())
            self.joined = self._members(every_group=True) if alive else 0
            if self.joined >= alive:
                return
            time.sleep(0.2)
        log.warning("%d replay helper(s) not in the groups of %s v%d after %.0f s", count, self.view,
                    self.version, timeout_s)  # fmt: skip

    def _members(self, *, every_group: bool = False) -> int:
        """Helpers listed in the version's groups: in any of them, or (`every_group`) in all."""
        groups = [self.runtime.groups.view(self.view, self.version)]
        if self.repartitioned:
            groups.append(self.runtime.groups.repartition(self.view, self.version))
        if self._admin is None:
            self._admin = clients.admin(self.settings)
        counts = []
        for future in self._admin.describe_consumer_groups(groups).values():
            members = future.result(timeout=10).members
            counts.append(sum(1 for m in members if m.client_id.startswith(CLIENT_PREFIX)))
        return min(counts) if every_group else max(counts)
