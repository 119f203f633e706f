"""Prometheus metrics of the worker (served at /metrics on the worker's web port)."""

from __future__ import annotations

import bisect
from collections import Counter as Tally
from collections.abc import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

# Process CPU (`process_cpu_seconds_total`), RSS (`process_resident_memory_bytes`), open files and
# the Python runtime's (`python_gc_*`, `python_info`) come with prometheus_client's default
# registry (its process, platform and GC collectors): nothing to add here.

COMMANDS = Counter(
    "streams_commands_total",
    "Commands handled, by outcome and reason (reason is empty when accepted).",
    ["context", "command_type", "status", "reason"],
)
EVENTS = Counter("streams_events_appended_total", "Events appended to the log.", ["context", "event_type"])
DLQ = Counter("streams_dlq_records_total", "Records sent to a dead-letter topic.", ["context", "reason"])
COMMAND_LATENCY_TARGET_S = 0.15
"""The p99 target of command -> result (BENCHMARKS.md); a bucket edge, so the share of commands
under it is exact, and the threshold of the `StreamsCommandLatencyP99OverTarget` alert."""
LATENCY = Histogram(
    "streams_command_latency_seconds",
    "Command record timestamp to committed result.",
    ["context"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, COMMAND_LATENCY_TARGET_S, 0.2, 0.3, 0.5, 1, 2, 5, 10),
)
BATCH = Histogram(
    "streams_batch_size",
    "Commands per transaction.",
    ["context"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000),
)
RETRIES = Counter(
    "streams_transaction_retries_total",
    "Aborted and retried transactions, by cause.",
    ["context", "cause"],
)
TRANSACTION_COMMIT = Histogram(
    "streams_transaction_commit_seconds",
    "Duration of a transactional stage's commit_transaction call (retriable errors retried within).",
    ["stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


# --- consumer groups (streams/kafka/stats.py: librdkafka's statistics of every group member) ----
CONSUMER_LAG = Gauge(
    "streams_consumer_lag_records",
    "Records between a group member's position and the end (last stable offset) of an assigned partition.",
    ["group", "topic", "partition"],
)
CONSUMER_REBALANCES = Counter(
    "streams_consumer_rebalances_total",
    "Rebalances a group member of this process went through (its first join included).",
    ["group"],
)
CONSUMER_ASSIGNED = Gauge(
    "streams_consumer_assigned_partitions",
    "Partitions assigned to a group member of this process.",
    ["group"],
)
CONSUMER_QUEUE_BYTES = Gauge(
    "streams_consumer_fetch_queue_bytes",
    "Bytes of records a group member has fetched and its stage not yet taken (librdkafka's "
    "fetchq_size; bounded by STREAMS_CONSUMER_QUEUE_BYTES).",
    ["group"],
)
CONSUMER_QUEUE_RECORDS = Gauge(
    "streams_consumer_fetch_queue_records",
    "Records a group member has fetched and its stage not yet taken (librdkafka's fetchq_cnt; each "
    "costs some 400 bytes of C heap besides its payload; STREAMS_CONSUMER_FETCH_BYTES bounds a fetch).",
    ["group"],
)

WINDOW_CACHE_BYTES = Gauge(
    "streams_window_cache_bytes",
    "Estimated bytes of the decoded window state a window stage keeps in memory (bounded by "
    "STREAMS_WINDOW_CACHE_BYTES).",
    ["window"],
)
WRITE_CACHE_BYTES = Gauge(
    "streams_write_cache_bytes",
    "Estimated bytes of the write side's cache of decoded aggregates (STREAMS_WRITE_CACHE_BYTES).",
    ["context"],
)
IDEMPOTENCY_IDS = Gauge(
    "streams_idempotency_ids",
    "Command ids remembered for dedupe on this worker (the idempotency window's contents).",
    ["context"],
)
IDEMPOTENCY_EXPIRED = Counter(
    "streams_idempotency_expired_total",
    "Command ids forgotten because they left the idempotency window.",
    ["context"],
)


_REFRESHERS: list[Callable[[], None]] = []


def on_render(refresh: Callable[[], None]) -> None:
    """Have `refresh` set its metrics just before each rendering (values read from elsewhere,
    such as RocksDB's properties, which are not worth reading between scrapes)."""
    _REFRESHERS.append(refresh)


def observe_ages(histogram: Histogram, now: float, timestamps: Iterable[float]) -> None:
    """Observe `now - ts` (at least 0) for each record timestamp of a batch, as `observe` would,
    but once per distinct timestamp: the records of a producer batch share their broker time
    (`LogAppendTime`), so a batch of thousands has few, and `observe` per record was a
    measurable part of a batch's CPU. `histogram` is a child (`.labels(...)`)."""
    bounds = histogram._upper_bounds  # prometheus_client's own fields, as its `observe` uses them
    buckets = histogram._buckets
    total = 0.0
    for ts, n in Tally(timestamps).items():
        amount = max(now - ts, 0.0)
        total += amount * n
        buckets[bisect.bisect_left(bounds, amount)].inc(n)
    if total:
        histogram._sum.inc(total)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type (after the `on_render` refreshers ran)."""
    for refresh in _REFRESHERS:
        refresh()
    return generate_latest(), CONTENT_TYPE_LATEST


# --- read side ------------------------------------------------------------------------------
VIEW_LAG = Gauge(
    "streams_view_lag_events",
    "Events between a view's positions and the head of its input (partitions owned here).",
    ["context", "view", "version"],
)
VIEW_LATENCY = Histogram(
    "streams_view_latency_seconds",
    "Event record timestamp to the document published on the view topic.",
    ["context", "view", "version"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30),
)
VIEW_DLQ = Counter(
    "streams_view_dlq_records_total",
    "Events a view could not fold, sent to its DLQ topic.",
    ["context", "view", "version", "reason"],
)
VIEW_FROZEN = Counter(
    "streams_view_frozen_documents_total",
    "Batches in which a document stayed frozen: an event would have made it pass the view topic's limit.",
    ["context", "view", "version"],
)
VIEW_SKIPPED = Counter(
    "streams_view_skipped_events_total",
    "Events not newer than the document's version for their aggregate (redeliveries).",
    ["context", "view", "version"],
)


# --- real-time publishing (streams/web/realtime.py) ---------------------------------------------
REALTIME_CLIENTS = Gauge("streams_realtime_clients", "Connected real-time clients.", ["transport"])
REALTIME_PUSHED = Counter(
    "streams_realtime_messages_pushed_total", "Messages pushed to real-time clients.", ["transport", "kind"]
)
REALTIME_DROPPED = Counter(
    "streams_realtime_clients_dropped_total",
    "Real-time clients disconnected by the server, by reason (slow_client: buffer full).",
    ["transport", "reason"],
)


# --- windowed aggregation (streams/windows) -------------------------------------------------------
WINDOW_RECORDS = Counter(
    "streams_window_records_total",
    "Raw records of a windowed aggregation, by outcome: folded, late, rerouted, table (join table "
    "events), or the reason they were dead-lettered.",
    ["context", "aggregation", "outcome"],
)
WINDOW_LATE = Counter(
    "streams_window_late_records_total",
    "Raw records that arrived after their window closed (end + grace): sent to the late DLQ.",
    ["context", "aggregation"],
)
WINDOWS_CLOSED = Counter(
    "streams_windows_closed_total",
    "Windows closed and emitted as system commands, by trigger (stream_time, idle).",
    ["context", "aggregation", "trigger"],
)
WINDOW_TIMERS = Counter(
    "streams_window_timers_fired_total",
    "Heartbeat timers fired (a key silent for its configured time).",
    ["context", "aggregation"],
)
PROCESS_INPUTS = Counter(
    "streams_process_inputs_total",
    "A process manager's inputs and deadlines, by outcome: handled, skipped, rekeyed, "
    "deadline_emitted, deadline_fired, deadline_ignored, or the reason they were dead-lettered.",
    ["process", "outcome"],
)
WINDOW_STREAM_TIME_BEHIND = Gauge(
    "streams_window_stream_time_behind_seconds",
    "Wall clock minus the committed stream time of a window stage's raw partition (how far the "
    "windows trail real time: a backlog, a quiet partition, or the skewed clock of a producer).",
    ["context", "aggregation", "partition"],
)
WINDOW_LATENCY = Histogram(
    "streams_window_fold_latency_seconds",
    "Raw record timestamp to the committed batch that folded it.",
    ["context", "aggregation"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30),
)


# --- topics (streams/kafka/runtime.py) -------------------------------------------------------------
TOPIC_MISMATCHES = Gauge(
    "streams_topic_mismatches",
    "Settings of an existing topic that differ from its declaration (partitions, cleanup policy, "
    "timestamp type, ...): the stage relying on it does not run and /health answers 503.",
    ["topic"],
)


# --- byte budgets of the read side and real-time publishing (docs/read-side.md) -------------------
VIEW_CACHE_BYTES = Gauge(
    "streams_view_document_cache_bytes",
    "Bytes of memory (estimated) the decoded documents of a view version take in its cache.",
    ["context", "view", "version"],
)
READ_WAITERS = Gauge("streams_read_waiters", "Requests waiting for min_version / min_offset now.")
READ_WAITERS_REFUSED = Counter(
    "streams_read_waiters_refused_total", "Waiting requests refused (503) past the waiter cap."
)
PAGE_BYTES = Histogram(
    "streams_view_page_bytes",
    "Bytes (stored form) of the documents of a list page served.",
    buckets=(1024, 16384, 131072, 524288, 1048576, 4194304, 16777216),
)
REALTIME_RING_BYTES = Gauge(
    "streams_realtime_ring_bytes",
    "Bytes of the recent records a context keeps for real-time clients.",
    ["context"],
)
REALTIME_MAILBOX_BYTES = Gauge(
    "streams_realtime_mailbox_bytes", "Bytes of frames queued for real-time clients (all streams)."
)
REALTIME_ELIDED = Counter(
    "streams_realtime_frames_elided_total",
    "Real-time frames over the frame cap, sent as `changed` frames without their body.",
    ["context"],
)


# --- RocksDB (streams/kafka/store.py) -------------------------------------------------------------
ROCKSDB_BLOCK_CACHE_BYTES = Gauge(
    "streams_rocksdb_block_cache_bytes",
    "Bytes in the block cache every RocksDB store of this process shares "
    "(STREAMS_ROCKSDB_BLOCK_CACHE_BYTES, the write buffers charged to it for at most half).",
)
ROCKSDB_STORES = Gauge("streams_rocksdb_stores", "RocksDB stores open in this process.")
ROCKSDB_SST_BYTES = Gauge(
    "streams_rocksdb_sst_bytes",
    "Bytes of the SST files of every open RocksDB store (`rocksdb.total-sst-files-size`).",
)
ROCKSDB_MEMTABLE_BYTES = Gauge(
    "streams_rocksdb_memtable_bytes",
    "Bytes of the memtables of every open RocksDB store (`rocksdb.size-all-mem-tables`).",
)
ROCKSDB_BLOCK_CACHE_PINNED_BYTES = Gauge(
    "streams_rocksdb_block_cache_pinned_bytes",
    "Bytes of the shared block cache held by readers or the write-buffer manager (not evictable).",
)
ROCKSDB_WRITE_BUFFER_BYTES = Gauge(
    "streams_rocksdb_write_buffer_bytes",
    "Bytes the shared write-buffer manager counts for the memtables of every store (its budget "
    "is charged to the block cache).",
)
ROCKSDB_TABLE_READERS_BYTES = Gauge(
    "streams_rocksdb_table_readers_bytes",
    "Bytes the open SST files' readers hold outside the block cache, summed over the stores "
    "(`rocksdb.estimate-table-readers-mem`).",
)
ROCKSDB_LIVE_VERSIONS = Gauge(
    "streams_rocksdb_live_versions",
    "Versions of the stores' file sets still referenced, summed (`rocksdb.num-live-versions`): one "
    "per store is normal; more are held by open iterators or compactions and keep files alive.",
)
ROCKSDB_SST_FILES = Gauge(
    "streams_rocksdb_sst_files",
    "Live SST files of every open store (each may hold an open file and a table reader).",
)
ROCKSDB_CACHE_HITS = Counter(
    "streams_rocksdb_block_cache_hits_total",
    "Block cache hits of the RocksDB stores (their statistics' `rocksdb.block.cache.hit`); the hit "
    "ratio is hits / (hits + misses).",
)
ROCKSDB_CACHE_MISSES = Counter(
    "streams_rocksdb_block_cache_misses_total",
    "Block cache misses of the RocksDB stores (their statistics' `rocksdb.block.cache.miss`).",
)


# --- restores (streams/kafka/tables.py: changelogs; streams/read/stage.py: compacted outputs) ----
RESTORE_SECONDS = Histogram(
    "streams_restore_seconds",
    "Time to restore one partition's store from its changelog or compacted output topic.",
    ["topic"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
RESTORED_RECORDS = Counter(
    "streams_restored_records_total",
    "Records read to restore a partition's store, per topic and partition.",
    ["topic", "partition"],
)


# --- process memory (streams/diagnostics.py) -------------------------------------------------------
MALLOC_BYTES = Gauge(
    "streams_malloc_bytes",
    "The C heap as the allocator sees it, by kind: in_use (allocated), free (freed but kept in "
    "the arenas: fragmentation; on jemalloc, its resident pages not allocated), mmapped (glibc's "
    "large blocks on their own mappings). Absent elsewhere than glibc and jemalloc.",
    ["kind"],
)
PYTHON_TRACED_BYTES = Gauge(
    "streams_python_traced_bytes",
    "Bytes of Python objects tracemalloc traces (0 unless the worker runs with PYTHONTRACEMALLOC).",
)
EVENT_LOOP_DELAY = Gauge(
    "streams_event_loop_delay_seconds",
    "How much later than due the web event loop last ran a timer (probed every 0.5 s): its own "
    "work plus its waits for the GIL behind the stage threads (streams/scheduling.py).",
)
