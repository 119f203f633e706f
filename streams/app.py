"""The composition root: the Faust worker and everything it hosts, for the configured contexts.

Run it with `streams worker` or `faust -A streams.app worker -l info`. This module is the only
place (with the CLI) that turns context names into `BoundedContext` objects; every stage is
handed its context's runtime.
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import faust
from confluent_kafka import KafkaException

from streams import diagnostics, scheduling
from streams.allocator import fix_mmap_threshold, limit_arenas, start_trimming
from streams.config import Settings
from streams.contexts.registry import get_context, process_managers
from streams.kafka import clients
from streams.kafka.forgetting import ForgetListener
from streams.kafka.hosting import Readiness, Runnable, hosted
from streams.kafka.runtime import Runtimes, ensure_topics
from streams.kafka.secret import DeploymentSecret
from streams.kafka.store import size_block_cache
from streams.processes.stage import ProcessStage
from streams.read.readside import WorkerReadSide
from streams.sinks.deriver import SinkDeriver
from streams.web import server
from streams.web.auth import check_advertised_url, check_secret
from streams.web.commands import CommandEndpoints
from streams.web.dashboard import DashboardEndpoints
from streams.web.docs import DocsEndpoints
from streams.web.health import HealthEndpoints
from streams.web.privacy import PrivacyEndpoints
from streams.web.query.aggregates import AggregateEndpoints
from streams.web.query.documents import DocumentEndpoints
from streams.web.query.lookup import ReadLookup
from streams.web.query.processes import ProcessEndpoints
from streams.web.query.routing import Router
from streams.web.realtime.endpoints import RealtimeEndpoints
from streams.web.realtime.limits import fitted, raise_open_files_limit
from streams.web.tls import TlsSettingsError, server_context
from streams.windows.stage import WindowStage
from streams.wire.signing import signed_url
from streams.wire.topics import faust_leader_spec
from streams.write.processor import CommandProcessor

log = logging.getLogger(__name__)
for _name in ("httpx", "httpx2"):  # the registry client logs one INFO line per request otherwise
    logging.getLogger(_name).setLevel(logging.WARNING)
settings = Settings()
limit_arenas(settings.malloc_arenas)  # before any thread: see streams/allocator.py
fix_mmap_threshold(settings.malloc_mmap_threshold)
size_block_cache(settings.rocksdb_block_cache_bytes)
scheduling.set_switch_interval(settings.switch_interval_ms)
diagnostics.export_gauges()


def worker_id(s: Settings) -> str:
    """Stable across restarts of the same worker (its transactional id derives from it)."""
    return s.worker_id or f"{socket.gethostname()}-{s.web_port}"


(settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)  # Faust does not create it
try:
    web_tls = server_context(settings)  # HTTPS when a certificate is set
except TlsSettingsError as exc:
    raise SystemExit(f"streams worker: {exc}") from None
app = faust.App(
    settings.app_id,
    broker=f"kafka://{settings.bootstrap}",
    broker_credentials=clients.faust_credentials(settings),  # SASL/TLS as every other client
    # Faust tables are unused: every stage keeps its state in RocksDB (streams.kafka.store). Faust
    # opens a store only for its own tables, so this setting is what its banner's `store` shows
    store="rocksdb://",
    datadir=str(settings.data_dir / "faust"),
    topic_partitions=settings.partitions,
    web_port=settings.web_port,
    web_bind=settings.web_bind,
    web_host="127.0.0.1",
    web_ssl_context=web_tls,
    processing_guarantee="at_least_once",
    # Faust's own group (it has no agents) must not hold a restarted worker back: static
    # membership lets it rejoin at once instead of waiting out its previous life's session
    consumer_group_instance_id=f"{settings.app_id}-{worker_id(settings)}",
    broker_session_timeout=10.0,
    broker_heartbeat_interval=1.0,
    # Faust's one topic (its leader topic) is created by the worker (`_faust_topics`): Faust's
    # aiokafka admin path fails the start while the node it takes for the controller is down
    topic_allow_declare=False,
    # Faust's own web views (/router, /table, /graph, statistics) would answer beside the API,
    # outside its guard's routes: none is served
    web_router_enabled=False,
    web_tables_enabled=False,
    web_graph_enabled=False,
    web_stats_enabled=False,
    web_metrics_enabled=False,
)


@app.on_worker_init.connect
def _faust_topics(sender: Any, /, *_: Any, signal: Any, **__: Any) -> None:
    """Faust's leader topic, before Faust starts (`faust worker` sends `on_worker_init` first);
    retried for a minute, as the contexts' own topics are, while the cluster is unreachable."""
    deadline = time.monotonic() + 60
    while True:
        try:
            ensure_topics(settings, [faust_leader_spec(settings.app_id)])
            return
        except KafkaException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(2)


try:
    check_advertised_url(settings.self_url())  # fail at start, not at the first forwarded request
    check_secret(settings)  # a bearer token is worthless if the secret can be read from Kafka
except ValueError as exc:
    raise SystemExit(f"streams worker: {exc}") from None  # one line, exit status 1
realtime_settings = fitted(settings, raise_open_files_limit())
contexts = {name: get_context(name) for name in settings.contexts}
runtimes = Runtimes(settings, contexts)
processes = {
    name: pm
    for name, pm in process_managers().items()
    if settings.processes_enabled and set(pm.contexts) <= set(contexts)
}
for _skipped in set(process_managers()) - set(processes) if settings.processes_enabled else ():
    log.warning("process %s not run: this worker does not run all of its contexts", _skipped)
secret = DeploymentSecret(settings)
read_side = WorkerReadSide(settings, runtimes, worker_id=worker_id(settings), url=settings.self_url())


def _secret() -> list[Runnable]:
    secret.get()  # before anything signs or checks a signature
    return []


def _processors() -> list[Runnable]:
    return [
        CommandProcessor(settings, runtimes.get(name), worker_id=worker_id(settings)) for name in contexts
    ]


def _read_side() -> list[Runnable]:
    read_side.start(client_id=signed_url(secret.get(), read_side.url))
    return [read_side]


window_stages: list[WindowStage] = []
"""This worker's window stages, once the `windows` service built them (for `/health`)."""


def _window_stages() -> list[Runnable]:
    window_stages[:] = [
        WindowStage(settings, runtimes.get(name), aggregation, worker_id=worker_id(settings))
        for name, context in contexts.items()
        for aggregation in context.windows
    ]
    return list(window_stages)


def stopped_stages() -> dict[str, str]:
    """The window stages that stopped by themselves (poison policy STOP), with why."""
    return {f"windows {stage.name}": stage.error for stage in window_stages if stage.error}


def _process_stages() -> list[Runnable]:
    return [
        ProcessStage(
            settings, pm, {name: runtimes.get(name) for name in pm.contexts}, worker_id=worker_id(settings)
        )
        for pm in processes.values()
    ]


def _sink_derivers() -> list[Runnable]:
    return [SinkDeriver(settings, runtimes.get(name)) for name in contexts]


readiness = Readiness("secret", "handler", *(["read-side"] if settings.read_side else []))
app.service(hosted("secret", _secret, readiness=readiness))
app.service(hosted("handler", _processors, readiness=readiness))
if settings.read_side:
    app.service(hosted("read-side", _read_side, readiness=readiness))
if settings.sinks_enabled:
    app.service(hosted("sink", _sink_derivers, join_timeout_s=30))
if settings.windows_enabled:
    app.service(hosted("windows", _window_stages))
app.service(hosted("privacy", lambda: [ForgetListener(settings)]))  # evicts keys of forgotten subjects
if processes:
    app.service(hosted("processes", _process_stages))


@app.task
async def _memory_housekeeping() -> None:
    """`kill -USR2` writes a tracemalloc snapshot (streams/diagnostics.py), after the worker's own
    signal handlers are in place; the C heap's free memory goes back to the system periodically."""
    diagnostics.install_snapshot_signal(settings.data_dir / "diagnostics")
    start_trimming(settings.malloc_trim_interval_s)


@app.task
async def _loop_delay() -> None:
    """`streams_event_loop_delay_seconds`: how late the web event loop runs (streams/scheduling.py)."""
    await scheduling.watch_loop_delay()


def served_version(context: str, view: str) -> int:
    """The version of a view this worker serves (1 without a read side)."""
    side = read_side.sides.get(context)
    return side.active(view) if side is not None else 1


router = Router(settings, read_side.url, secret.ready)
lookup = ReadLookup(settings, read_side)
server.install(
    app,
    settings,
    secret.ready,
    [
        HealthEndpoints(settings, readiness, stopped_stages),
        DocsEndpoints(settings, contexts, processes),
        DashboardEndpoints(worker_id(settings)),
        CommandEndpoints(settings, runtimes),
        DocumentEndpoints(settings, lookup, router),
        AggregateEndpoints(settings, lookup, router),
        ProcessEndpoints(settings, processes),
        RealtimeEndpoints(realtime_settings, runtimes, secret.ready, served_version),
        PrivacyEndpoints(settings),
    ],
)


def main() -> None:
    """Entry point of `faust -A streams.app`."""
    app.main()
