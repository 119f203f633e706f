"""The Faust worker: hosts each context's command processor and the web API.

Run it with `streams worker` or `faust -A streams.app worker -l info`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import faust
from mode import Service

from streams.config import Settings
from streams.kafka.runtime import ContextRuntime
from streams.sinks.deriver import register_sinks
from streams.web.commands import register_views
from streams.web.query import register_read_side
from streams.web.realtime import register_realtime
from streams.write.processor import CommandProcessor

log = logging.getLogger(__name__)
for _name in ("httpx", "httpx2"):  # the registry client logs one INFO line per request otherwise
    logging.getLogger(_name).setLevel(logging.WARNING)
settings = Settings()


def worker_id(s: Settings) -> str:
    """Stable across restarts of the same worker (its transactional id derives from it)."""
    return s.worker_id or f"{socket.gethostname()}-{s.web_port}"


(settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)  # Faust does not create it
app = faust.App(
    settings.app_id,
    broker=f"kafka://{settings.bootstrap}",
    store="memory://",  # Faust tables are unused: state lives in streams.kafka.store (RocksDB)
    datadir=str(settings.data_dir / "faust"),
    topic_partitions=settings.partitions,
    web_port=settings.web_port,
    web_bind=settings.web_bind,
    web_host="127.0.0.1",
    processing_guarantee="at_least_once",
    # Faust's own group (it has no agents) must not hold a restarted worker back: static
    # membership lets it rejoin at once instead of waiting out its previous life's session
    consumer_group_instance_id=f"{settings.app_id}-{worker_id(settings)}",
    broker_session_timeout=10.0,
    broker_heartbeat_interval=1.0,
    topic_allow_declare=True,
)


def _connect(name: str) -> ContextRuntime:
    return ContextRuntime.connect(settings, name, retry_for_s=300)


@app.service
class WriteSide(Service):
    """Runs one CommandProcessor thread per configured context."""

    processors: list[CommandProcessor]
    threads: list[threading.Thread]

    def __post_init__(self) -> None:
        self.processors = []
        self.threads = []

    async def on_start(self) -> None:
        loop = asyncio.get_running_loop()
        for name in settings.contexts:
            runtime = await loop.run_in_executor(None, _connect, name)
            processor = CommandProcessor(settings, runtime, worker_id=worker_id(settings))
            thread = threading.Thread(target=processor.run, name=f"handler-{name}", daemon=True)
            thread.start()
            self.processors.append(processor)
            self.threads.append(thread)
            log.info("command handler for %s started (%s)", name, processor.transactional_id)

    async def on_stop(self) -> None:
        for processor in self.processors:
            processor.stop()
        loop = asyncio.get_running_loop()
        for thread in self.threads:
            await loop.run_in_executor(None, thread.join, 60)


register_views(app, settings)
register_read_side(app, settings, worker_id(settings))
register_sinks(app, settings)
register_realtime(app, settings)


def main() -> None:
    """Entry point of `faust -A streams.app`."""
    app.main()
