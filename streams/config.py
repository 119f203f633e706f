"""The one configuration object, read from the environment (same names as ops/stack.env)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _local_connect_secrets() -> str:
    """The credentials file `ops/stack.sh` writes for its Connect worker, when there is one here."""
    local = Path(".stack/conf/connect-secrets.properties")
    return str(local.resolve()) if local.is_file() else ""


def local_stack_pg_password(data: Path = Path(".stack")) -> str:
    """The PostgreSQL password of the local stack whose data dir is `data`: the one `ops/stack.sh`
    generated (`postgres.password`), else the one its Connect secrets file holds (a data dir made
    before the password was generated); "" when neither exists."""
    generated = data / "postgres.password"
    if generated.is_file():
        return generated.read_text().strip()
    secrets = data / "conf" / "connect-secrets.properties"
    for line in secrets.read_text().splitlines() if secrets.is_file() else ():
        if line.startswith("password="):
            return line.split("=", 1)[1].strip()
    return ""


def _default_pg_dsn() -> str:
    """The local stack's database as role `streams`, with its generated password when there is
    one here (libpq's `PGPASSWORD` otherwise)."""
    password = local_stack_pg_password()
    user = f"streams:{quote(password, safe='')}" if password else "streams"
    return f"postgresql://{user}@127.0.0.1:{_env('PG_PORT', '5432')}/streams"


def _kafka_password() -> str:
    """`KAFKA_SASL_PASSWORD`, else the first line of the file `KAFKA_SASL_PASSWORD_FILE` names."""
    if password := os.environ.get("KAFKA_SASL_PASSWORD"):
        return password
    path = os.environ.get("KAFKA_SASL_PASSWORD_FILE", "")
    return Path(path).read_text().strip() if path else ""


@dataclass(frozen=True)
class Settings:
    """Where the services are and how the worker behaves."""

    bootstrap: str = field(
        default_factory=lambda: _env("KAFKA_BOOTSTRAP", f"127.0.0.1:{_env('KAFKA_PORT', '9092')}")
    )
    kafka_security_protocol: str = field(
        default_factory=lambda: _env("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT").upper()
    )
    """How every Kafka client of the project connects: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or
    `SASL_SSL` (a managed cluster, or the local stack's `STACK_SECURITY=sasl_ssl`)."""
    kafka_sasl_mechanism: str = field(default_factory=lambda: _env("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"))
    """The SASL mechanism with a `SASL_*` protocol: `SCRAM-SHA-512`, `SCRAM-SHA-256` or `PLAIN`."""
    kafka_sasl_username: str = field(default_factory=lambda: _env("KAFKA_SASL_USERNAME", ""))
    kafka_sasl_password: str = field(default_factory=_kafka_password, repr=False)
    """`KAFKA_SASL_PASSWORD`, or read from the file `KAFKA_SASL_PASSWORD_FILE` names (mode 600)."""
    kafka_ssl_ca_location: str = field(default_factory=lambda: _env("KAFKA_SSL_CA_LOCATION", ""))
    """The CA certificate (PEM) the brokers' certificates are checked against; empty: the
    system's trust store (a managed cluster with a public CA)."""
    registry_url: str = field(
        default_factory=lambda: _env(
            "SCHEMA_REGISTRY_URL",
            f"http://127.0.0.1:{_env('REGISTRY_PORT', '8081')}/apis/ccompat/v7",
        )
    )
    connect_url: str = field(
        default_factory=lambda: _env("CONNECT_URL", f"http://127.0.0.1:{_env('CONNECT_PORT', '8083')}")
    )
    pg_dsn: str = field(default_factory=lambda: os.environ.get("PG_DSN") or _default_pg_dsn())
    """The database of the sinks and the key store. Default: the local stack's, with the password
    it generated (`.stack/postgres.password`); `PGPASSWORD` supplies one the DSN leaves out."""
    connect_secrets: str = field(
        default_factory=lambda: _env("STREAMS_CONNECT_SECRETS", _local_connect_secrets())
    )
    """The database credentials file (`username=`, `password=`) as the Kafka Connect worker sees
    it, read through its FileConfigProvider: connector configs then name it instead of holding
    the password. Default: the file the local stack writes (`.stack/conf/connect-secrets.properties`)
    when it exists. Empty: the password goes into the connector config (a warning says so)."""
    topic_prefix: str = field(default_factory=lambda: _env("STREAMS_TOPIC_PREFIX", ""))
    partitions: int = field(default_factory=lambda: int(_env("STREAMS_PARTITIONS", "4")))
    app_id: str = field(default_factory=lambda: _env("STREAMS_APP_ID", "streams"))
    data_dir: Path = field(default_factory=lambda: Path(_env("STREAMS_DATA_DIR", ".stack/worker")))
    web_port: int = field(default_factory=lambda: int(_env("STREAMS_WEB_PORT", "6066")))
    web_bind: str = field(default_factory=lambda: _env("STREAMS_WEB_BIND", "127.0.0.1"))
    web_tls_cert: str = field(default_factory=lambda: _env("STREAMS_WEB_TLS_CERT", ""))
    """PEM certificate (chain) the web server presents: it serves HTTPS only when this and
    `web_tls_key` are set (streams.web.tls)."""
    web_tls_key: str = field(default_factory=lambda: _env("STREAMS_WEB_TLS_KEY", ""))
    """The PEM private key of `web_tls_cert`."""
    web_ca_file: str = field(default_factory=lambda: _env("STREAMS_WEB_CA_FILE", ""))
    """CA certificates that clients of workers trust (requests forwarded between workers,
    `streams top`, `streams trace`); the system's trust store when empty."""
    max_state_bytes: int = field(default_factory=lambda: int(_env("STREAMS_MAX_STATE_BYTES", "900000")))
    """An aggregate's encoded state may not grow past this (its changelog record must fit 1 MB)."""
    commit_interval_s: float = field(default_factory=lambda: float(_env("STREAMS_COMMIT_INTERVAL", "0.1")))
    max_record_bytes: int = field(
        default_factory=lambda: int(_env("STREAMS_MAX_RECORD_BYTES", str(256 * 1024)))
    )
    max_message_bytes: int = field(
        default_factory=lambda: int(_env("STREAMS_MAX_MESSAGE_BYTES", str(1024 * 1024)))
    )
    """`max.message.bytes` of every topic the project creates (DLQ topics: 8 MiB), and the limit
    every output record is checked against before it is produced."""
    idempotency_window_ms: int = field(
        default_factory=lambda: int(_env("STREAMS_IDEMPOTENCY_WINDOW_MS", str(7 * 24 * 3600 * 1000)))
    )
    """How long a command id is remembered (default: the commands topic's 7-day retention); a
    resend after it is a new command (docs/write-side.md)."""
    write_cache_bytes: int = field(
        default_factory=lambda: int(_env("STREAMS_WRITE_CACHE_BYTES", str(64 * 1024 * 1024)))
    )
    """Bytes of recently used aggregates the write side keeps decoded in memory (estimated)."""
    exactly_once: bool = field(default_factory=lambda: _env("STREAMS_EXACTLY_ONCE", "1") == "1")
    snapshot_every: int = field(default_factory=lambda: int(_env("STREAMS_SNAPSHOT_EVERY", "100")))
    worker_id: str = field(default_factory=lambda: _env("STREAMS_WORKER_ID", ""))
    contexts: tuple[str, ...] = field(
        default_factory=lambda: tuple(_env("STREAMS_CONTEXTS", "orders").split(","))
    )
    sinks_enabled: bool = field(default_factory=lambda: _env("STREAMS_SINKS", "1") == "1")
    sink_views: tuple[str, ...] = field(
        default_factory=lambda: tuple(v for v in _env("STREAMS_SINK_VIEWS", "").split(",") if v)
    )
    sink_schema: str = field(default_factory=lambda: _env("STREAMS_SINK_SCHEMA", "public"))
    auth_token: str = field(default_factory=lambda: _env("STREAMS_AUTH_TOKEN", ""))
    realtime_buffer: int = field(default_factory=lambda: int(_env("STREAMS_REALTIME_BUFFER", "1000")))
    """Frames buffered per real-time client; a client whose buffer stays full for 2 s is dropped."""
    realtime_ring: int = field(default_factory=lambda: int(_env("STREAMS_REALTIME_RING", "4096")))
    """Recent records per context kept in memory for clients that resume or fall behind."""
    realtime_keepalive_s: float = field(
        default_factory=lambda: float(_env("STREAMS_REALTIME_KEEPALIVE", "10"))
    )
    """Seconds between SSE keep-alive comments and WebSocket pings on an idle stream."""
    realtime_max_per_address: int = field(
        default_factory=lambda: int(_env("STREAMS_REALTIME_MAX_PER_ADDRESS", "64"))
    )
    """Real-time streams one client address may hold open at once (429 beyond)."""
    realtime_max_clients: int = field(
        default_factory=lambda: int(_env("STREAMS_REALTIME_MAX_CLIENTS", "20000"))
    )
    """Real-time streams a worker holds open at once (503 beyond)."""
    realtime_readers: int = field(default_factory=lambda: int(_env("STREAMS_REALTIME_READERS", "2")))
    """Consumers shared by the real-time clients that catch up from Kafka."""
    view_errors: str = field(default_factory=lambda: _env("STREAMS_VIEW_ERRORS", "dlq"))
    """What a view does with an event its handler cannot fold: `dlq` (and go on) or `halt`."""
    view_restore: bool = field(default_factory=lambda: _env("STREAMS_VIEW_RESTORE", "1") == "1")
    """A view partition new to this worker is restored from its compacted topic, then folds only
    the events after (0: it folds the log from offset 0, as before)."""
    read_side: bool = field(default_factory=lambda: _env("STREAMS_READ_SIDE", "1") == "1")
    windows_enabled: bool = field(default_factory=lambda: _env("STREAMS_WINDOWS", "1") == "1")
    """Run the window stages of the contexts' windowed aggregations in this worker."""
    processes_enabled: bool = field(default_factory=lambda: _env("STREAMS_PROCESSES", "1") == "1")
    """Run the process managers whose contexts this worker runs (0: none of them)."""
    signals: bool = field(default_factory=lambda: _env("STREAMS_SIGNALS", "1") == "1")
    """The signals of issue 27 that cost on the hot paths (0: off): librdkafka's statistics of
    every group member (consumer lag, rebalances), the transaction commit histogram and RocksDB's
    statistics (block cache hits and misses). The older metrics stay on either way."""
    rocksdb_statistics: bool = field(default_factory=lambda: _env("STREAMS_ROCKSDB_STATISTICS", "1") == "1")
    """RocksDB's statistics on every store, when `signals` is on (0: off alone, to measure them)."""
    rocksdb_block_cache_bytes: int = field(
        default_factory=lambda: int(_env("STREAMS_ROCKSDB_BLOCK_CACHE_BYTES", str(64 * 1024 * 1024)))
    )
    """Bytes of RocksDB's block cache, which every store of the worker shares; half of it is the
    budget of their memtables, charged to it (`streams.kafka.store.size_block_cache`)."""
    max_body_bytes: int = field(default_factory=lambda: int(_env("STREAMS_MAX_BODY_BYTES", str(1024 * 1024))))
    """The largest command request body the HTTP API reads (413 above)."""
    rate_limit: float = field(default_factory=lambda: float(_env("STREAMS_RATE_LIMIT", "0")))
    """Requests per second one client address may make (bursts of twice that); 0: no limit."""
    secret: str = field(default_factory=lambda: _env("STREAMS_SECRET", ""))
    """Signs resume tokens, the workers' advertised URLs and requests forwarded between workers;
    every worker of a deployment needs the same one. Empty: one is kept in Kafka (see
    `streams.kafka.secret`)."""
    advertised_url: str = field(default_factory=lambda: _env("STREAMS_ADVERTISED_URL", ""))
    """Where other workers reach this one (default `http://127.0.0.1:<web port>`)."""
    allowed_hosts: tuple[str, ...] = field(
        default_factory=lambda: tuple(
            h.strip() for h in _env("STREAMS_ALLOWED_HOSTS", "").split(",") if h.strip()
        )
    )
    """Host names the web server answers to, besides localhost and the advertised URL's host."""
    allowed_origins: tuple[str, ...] = field(
        default_factory=lambda: tuple(
            o.strip() for o in _env("STREAMS_ALLOWED_ORIGINS", "").split(",") if o.strip()
        )
    )
    """Origins (`https://app.example`) whose pages may open WebSocket/SSE streams, besides the
    worker's own."""
    trusted_proxies: tuple[str, ...] = field(
        default_factory=lambda: tuple(
            p.strip() for p in _env("STREAMS_TRUSTED_PROXIES", "").split(",") if p.strip()
        )
    )
    """Addresses or networks (`10.0.0.0/8`) of reverse proxies whose `X-Forwarded-For` names the
    client (for the rate limit and the real-time limits); empty: the TCP peer is the client."""

    malloc_arenas: int = field(default_factory=lambda: int(_env("STREAMS_MALLOC_ARENAS", "0")))
    """The most glibc malloc arenas the worker may use (0: glibc's default, eight per core);
    fewer arenas may keep a many-threaded worker's heap from fragmenting (`streams.allocator`).
    Not the default: in one pair of 10-minute soaks, 2 arenas left RSS about 20 MiB lower but
    its slope unchanged (bench/results/soak-*.json)."""
    malloc_mmap_threshold: int = field(
        default_factory=lambda: int(_env("STREAMS_MALLOC_MMAP_THRESHOLD", str(128 * 1024)))
    )
    """Blocks of this many bytes or more come from `mmap` and go back to the system when freed
    (0: glibc's dynamic threshold, which rises until large blocks fragment the heap;
    `streams.allocator`)."""
    consumer_queue_bytes: int = field(
        default_factory=lambda: int(_env("STREAMS_CONSUMER_QUEUE_BYTES", str(16 * 1024 * 1024)))
    )
    """Bytes of records each group consumer fetches ahead of its stage (librdkafka's
    `queued.max.messages.kbytes`; its default, 64 MiB, counts payloads only: 64 MiB of 60-byte
    readings held about 250 MiB of the C heap behind a lagging window stage)."""
    consumer_queue_records: int = field(
        default_factory=lambda: int(_env("STREAMS_CONSUMER_QUEUE_RECORDS", "10000"))
    )
    """Records per partition each group consumer tries to keep fetched ahead (librdkafka's
    `queued.min.messages`, 100,000 by default); a stage takes at most 2,000 per batch."""
    switch_interval_ms: float = field(default_factory=lambda: float(_env("STREAMS_SWITCH_INTERVAL_MS", "1")))
    """The GIL's switch interval (ms): how long the web event loop may wait behind a busy stage
    thread at each of its system calls (0: Python's default, 5 ms; `streams.scheduling`)."""
    consumer_fetch_bytes: int = field(
        default_factory=lambda: int(_env("STREAMS_CONSUMER_FETCH_BYTES", str(64 * 1024)))
    )
    """Bytes of one partition a group consumer fetches at once (librdkafka's
    `max.partition.fetch.bytes`, 1 MiB by default). A fetch lands whole, past the record bound:
    over 4 partitions of lz4-compressed readings, a lagging member held 144,035 records, +66.8 MiB
    of C heap, for 11.9 MiB of counted payload; with 64 KiB, 15,232 records and +7.3 MiB
    (bench/results/prefetch-20261207T041827.json). A larger record batch still comes whole (the
    broker returns the first batch of a fetch whatever its size)."""
    malloc_trim_interval_s: float = field(
        default_factory=lambda: float(_env("STREAMS_MALLOC_TRIM_INTERVAL_S", "30"))
    )
    """How often the worker hands the C heap's free memory back to the system when it keeps 16 MiB
    or more (0: never; `streams.allocator.start_trimming`)."""
    read_document_cache_bytes: int = field(
        default_factory=lambda: int(_env("STREAMS_READ_DOCUMENT_CACHE_BYTES", str(16 * 1024 * 1024)))
    )
    """Bytes of memory the decoded documents of each view version may take (estimated: six times
    a document's stored JSON plus 300 bytes, `streams.kafka.tables.memory_cost`)."""
    window_cache_bytes: int = field(
        default_factory=lambda: int(_env("STREAMS_WINDOW_CACHE_BYTES", str(16 * 1024 * 1024)))
    )
    """Bytes of memory the decoded open windows, join rows and timers of each window stage may
    take (estimated as `streams.kafka.tables.memory_cost` of their stored JSON)."""
    read_max_waiters: int = field(default_factory=lambda: int(_env("STREAMS_READ_MAX_WAITERS", "1000")))
    """Requests one worker lets wait for `min_version` / `min_offset` at once (503 beyond)."""
    read_page_bytes: int = field(
        default_factory=lambda: int(_env("STREAMS_READ_PAGE_BYTES", str(4 * 1024 * 1024)))
    )
    """Bytes of documents a list page holds at most; a fuller page ends early with a cursor."""
    realtime_ring_bytes: int = field(
        default_factory=lambda: int(_env("STREAMS_REALTIME_RING_BYTES", str(64 * 1024 * 1024)))
    )
    """Bytes of recent records per context kept in memory for real-time clients (with the count
    `realtime_ring`, whichever is reached first)."""
    realtime_mailbox_bytes: int = field(
        default_factory=lambda: int(_env("STREAMS_REALTIME_MAILBOX_BYTES", str(4 * 1024 * 1024)))
    )
    """Bytes of frames buffered per real-time stream (with the count `realtime_buffer`)."""
    realtime_frame_bytes: int = field(
        default_factory=lambda: int(_env("STREAMS_REALTIME_FRAME_BYTES", str(256 * 1024)))
    )
    """The largest real-time frame body; a bigger change is sent as a `changed` frame that
    names the document or aggregate and its position, without the body."""

    @property
    def rocksdb_statistics_on(self) -> bool:
        """Whether stores keep RocksDB's statistics (both switches on)."""
        return self.signals and self.rocksdb_statistics

    def self_url(self) -> str:
        """The URL other workers reach this one at."""
        scheme = "https" if self.web_tls_cert else "http"
        return (self.advertised_url or f"{scheme}://127.0.0.1:{self.web_port}").rstrip("/")
