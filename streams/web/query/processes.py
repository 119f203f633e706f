"""`GET /processes/<process>/<correlation id>`: a process manager's instance as its stage last
committed it, the same record and the same JSON as `streams process <process> <id>`
(`streams.processes.inspect` reads it; this module only answers over HTTP).

The instance is read from the process's changelog partition (`read_committed`) in a small
executor of its own, at most `MAX_READS` at a time, so a burst of requests holds a bounded
number of Kafka consumers and never blocks the event loop. A worker answers for the process
managers it hosts (those whose contexts it runs): any other name is `unknown_process`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web
from confluent_kafka import KafkaException

from streams.config import Settings
from streams.core.processes import ProcessInstance, ProcessManager
from streams.processes.inspect import as_json, committed_instance
from streams.processes.records import process_codec
from streams.web.responses import NotFound, Problem, ok
from streams.wire.codec import AvroCodec
from streams.wire.codec_errors import RegistryUnavailable
from streams.wire.identifiers import InvalidIdentifier, check_identifier, shorten

MAX_READS = 2
"""Changelog reads running at once on one worker (each holds a Kafka consumer)."""


class UnknownProcess(NotFound):
    """No process manager of that name runs on this worker (404)."""

    reason = "unknown_process"


class UnknownInstance(NotFound):
    """The process has no instance of that correlation id (404)."""

    reason = "unknown_instance"


class BadCorrelationId(Problem):
    """A correlation id outside the identifier policy (400)."""

    reason = "invalid_identifier"


class ChangelogUnreadable(Problem):
    """The process's changelog could not be read now (503: its topics may still be created)."""

    status = 503
    reason = "changelog_unreadable"


class ProcessEndpoints:
    """A process instance: state, deadlines, commands sent and their outcomes."""

    def __init__(self, settings: Settings, processes: Mapping[str, ProcessManager[Any]]) -> None:
        self.settings = settings
        self.processes = processes
        self._codec: AvroCodec | None = None
        self._executor = ThreadPoolExecutor(MAX_READS, thread_name_prefix="process-query")

    def routes(self) -> list[web.AbstractRouteDef]:
        """This group's routes."""
        return [web.get("/processes/{process}/{correlation_id}", self.instance)]

    async def on_shutdown(self, app: web.Application) -> None:
        """Let the reads under way finish; take no more."""
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def instance(self, request: web.Request) -> web.Response:
        """The instance as `streams process` prints it."""
        process, correlation_id = request.match_info["process"], request.match_info["correlation_id"]
        if process not in self.processes:
            known = ", ".join(sorted(self.processes)) or "none"
            raise UnknownProcess(f"no process {shorten(process)!r} runs on this worker; known: {known}")
        try:
            check_identifier("correlation_id", correlation_id)
        except InvalidIdentifier as exc:
            raise BadCorrelationId(str(exc), field=exc.field) from None
        loop = asyncio.get_running_loop()
        try:
            found = await loop.run_in_executor(self._executor, self._read, process, correlation_id)
        except (KafkaException, TimeoutError, RegistryUnavailable) as exc:
            raise ChangelogUnreadable(
                f"the changelog of process {process} could not be read: {exc}"
            ) from None
        if found is None:
            raise UnknownInstance(f"process {process} has no instance {shorten(correlation_id)!r}")
        return ok(as_json(found))

    def _read(self, process: str, correlation_id: str) -> ProcessInstance | None:
        """The committed instance (in the executor; the codec registers its schemas once)."""
        if self._codec is None:
            self._codec = process_codec(self.settings)
        return committed_instance(self.settings, process, correlation_id, self._codec)
