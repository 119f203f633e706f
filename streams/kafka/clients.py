"""Every Kafka client of the project is built here, and every consumed batch passes one error policy.

Roles and what they need:
- `write_producer`: the write path's producer (transactional unless at-least-once); big records,
  a short retry back-off (see `retry.backoff.ms` below);
- `producer`: an idempotent producer for derived outputs (views, sink rows, control records, commands);
- `transactional_producer`: one-off transactions outside the write path (`streams rebuild`);
- `group_consumer`: a member of a consumer group, `read_committed`, offsets stored explicitly;
- `reader`: a `read_committed` consumer in a throw-away group that never commits (tools, readers);
- `admin`: the admin client.

`connection()` is how every one of them (and, through `faust_credentials()`, Faust's own clients)
reaches the brokers: plaintext, or SASL/TLS with the credentials of `Settings`.

`records()` is the one policy for errors that arrive as messages; `bounded()` is the watchdog
for client calls that can hang; `take()` and `watermarks()` are the shared read primitives and
`produce()` the one produce call that waits for room in the producer's queue.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from streams.config import Settings
from streams.kafka import stats
from streams.wire.limits import producer_message_max_bytes

log = logging.getLogger(__name__)


def connection(settings: Settings) -> dict[str, Any]:
    """Where the brokers are and how to reach them (librdkafka's names): bootstrap servers, and
    with a secured cluster the protocol, SASL mechanism and credentials and the CA file. Every
    client built here starts from it; nothing else of the project knows these settings."""
    config: dict[str, Any] = {"bootstrap.servers": settings.bootstrap}
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return config
    config["security.protocol"] = protocol
    if protocol.startswith("SASL_"):
        config["sasl.mechanisms"] = settings.kafka_sasl_mechanism
        config["sasl.username"] = settings.kafka_sasl_username
        config["sasl.password"] = settings.kafka_sasl_password
    if protocol.endswith("SSL") and settings.kafka_ssl_ca_location:
        config["ssl.ca.location"] = settings.kafka_ssl_ca_location
    return config


def faust_credentials(settings: Settings) -> Any:
    """The same connection settings for Faust's own (aiokafka) clients: its consumer group and
    leader topic. None with `PLAINTEXT`."""
    import ssl

    import faust

    protocol = settings.kafka_security_protocol
    context = (
        ssl.create_default_context(cafile=settings.kafka_ssl_ca_location or None)
        if protocol.endswith("SSL")
        else None
    )
    if protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


_PRODUCER = {
    "enable.idempotence": True,
    "linger.ms": 5,
    "batch.num.messages": 10000,
    "compression.type": "lz4",
}


def _batch_size(settings: Settings) -> int:
    """librdkafka's per-partition batch size: below the topics' `max.message.bytes`, or the
    broker would refuse a batch of records that each fit."""
    return max(1024, min(1_000_000, settings.max_message_bytes - 1024))


TRANSACTION_TIMEOUT_MS = 30000
"""How long the coordinator lets a transaction stay open before it aborts it (a paused or dead
worker's transaction ends by then at the latest)."""


def write_producer(settings: Settings, transactional_id: str | None) -> Producer:
    """The write path's producer: transactional with `transactional_id`, else idempotent only."""
    config: dict[str, Any] = {
        **connection(settings),
        **_PRODUCER,
        "batch.size": _batch_size(settings),
        "message.max.bytes": producer_message_max_bytes(settings.max_message_bytes),
        # A transaction begun right after the previous commit meets CONCURRENT_TRANSACTIONS
        # until the coordinator has written the commit markers; librdkafka's default 100 ms
        # back-off then lands in the next batch's latency (the Java client retries after 20).
        "retry.backoff.ms": 10,
    }
    if transactional_id is not None:
        config.update({"transactional.id": transactional_id})
        config["transaction.timeout.ms"] = TRANSACTION_TIMEOUT_MS
    return Producer(config)


def producer(settings: Settings, *, errors_only: bool = False) -> Producer:
    """An idempotent producer. `errors_only`: delivery callbacks run for failed records only
    (one Python callback per output record cost more than producing it)."""
    config: dict[str, Any] = {
        **connection(settings),
        **_PRODUCER,
        "batch.size": _batch_size(settings),
        "message.max.bytes": producer_message_max_bytes(settings.max_message_bytes),
    }
    if errors_only:
        config["delivery.report.only.error"] = True
    return Producer(config)


def transactional_producer(settings: Settings, transactional_id: str) -> Producer:
    """A producer for one-off transactions (its `init_transactions` is the caller's)."""
    return Producer(
        {
            **connection(settings),
            **_PRODUCER,
            "message.max.bytes": producer_message_max_bytes(settings.max_message_bytes),
            "transactional.id": transactional_id,
        }
    )


def prefetch_bounds(settings: Settings) -> dict[str, int]:
    """How far a group member fetches ahead of its stage, in bytes and in records per partition:
    librdkafka's defaults let a lagging stage's queue grow to 64 MiB of payloads, plus every
    record's own overhead (`STREAMS_CONSUMER_QUEUE_BYTES`, `STREAMS_CONSUMER_QUEUE_RECORDS`), and
    a fetch of up to 1 MiB per partition lands whole, past both (`STREAMS_CONSUMER_FETCH_BYTES`)."""
    return {
        "queued.max.messages.kbytes": max(1, settings.consumer_queue_bytes // 1024),
        "queued.min.messages": settings.consumer_queue_records,
        "max.partition.fetch.bytes": settings.consumer_fetch_bytes,
    }


def group_consumer(
    settings: Settings,
    group_id: str,
    *,
    instance_id: str | None = None,
    client_id: str | None = None,
    max_poll_interval_ms: int = 300000,
    overrides: Mapping[str, Any] | None = None,
    commits: bool = True,
) -> Consumer:
    """A consumer-group member reading committed records from the earliest offset; offsets are
    committed by the caller. `instance_id` makes it a static member (a restarted worker takes its
    partitions back without a rebalance); `client_id` is what the group's description shows.
    Its statistics feed the lag and rebalance metrics (`streams.kafka.stats`): `commits` says
    whether the caller commits offsets through this consumer (its lag counts from the committed
    offset), not inside a producer's transaction (from the records handed over)."""
    config: dict[str, Any] = {
        **connection(settings),
        "group.id": group_id,
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "range",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": max_poll_interval_ms,
        "fetch.wait.max.ms": 20,
        **prefetch_bounds(settings),
    }
    if settings.signals:  # STREAMS_SIGNALS=0: no statistics, no lag or rebalance series
        config["statistics.interval.ms"] = stats.STATS_INTERVAL_MS
        config["stats_cb"] = stats.COLLECTOR.callback(group_id, commits=commits)
    if instance_id is not None:
        config["group.instance.id"] = instance_id
    if client_id is not None:
        config["client.id"] = client_id
    config.update(overrides or {})
    return Consumer(config)


def bounded_reader_config(settings: Settings) -> dict[str, Any]:
    """The prefetch limits of a pooled reader: librdkafka's defaults queue up to 64 MiB per
    consumer (`queued.max.messages.kbytes`) and fetch 50 MiB at once, for readers that want a
    few records. A record larger than `fetch.max.bytes` still comes (the broker returns at least
    one), so one record's worth plus room is enough."""
    fetch = max(settings.max_message_bytes, 1024 * 1024) + 64 * 1024
    return {
        "fetch.max.bytes": fetch,
        "max.partition.fetch.bytes": fetch,
        "queued.max.messages.kbytes": 2 * fetch // 1024,
    }


def reader(
    settings: Settings,
    *,
    eof: bool = False,
    bounded: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> Consumer:
    """A `read_committed` consumer that never commits (assigned partitions, or subscribed in a
    group of its own). `eof`: report the end of each partition as a message. `bounded`: a small
    prefetch (`bounded_reader_config`), for readers kept in a pool."""
    config: dict[str, Any] = {
        **connection(settings),
        "group.id": f"streams-reader-{uuid.uuid4()}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        # read_committed long polls otherwise wait out fetch.wait.max.ms (500) per empty fetch
        "fetch.wait.max.ms": 10,
    }
    if eof:
        config["enable.partition.eof"] = True
    if bounded:
        config.update(bounded_reader_config(settings))
    config.update(overrides or {})
    return Consumer(config)


def admin(settings: Settings) -> AdminClient:
    """The admin client."""
    return AdminClient(connection(settings))


def committed_offsets(
    settings: Settings, group_id: str, partitions: list[TopicPartition]
) -> list[TopicPartition]:
    """The offsets a consumer group has committed (negative: none)."""
    consumer = reader(settings, overrides={"group.id": group_id})
    try:
        return list(consumer.committed(partitions, timeout=10))
    finally:
        consumer.close()


# --- the one policy for errors that arrive as messages ----------------------------------------


_NOT_YET = (KafkaError._UNKNOWN_TOPIC, KafkaError.UNKNOWN_TOPIC_OR_PART)

POISON_CODES = frozenset(
    {
        KafkaError.MSG_SIZE_TOO_LARGE,
        KafkaError.RECORD_LIST_TOO_LARGE,
        KafkaError.INVALID_RECORD,
        KafkaError.INVALID_TIMESTAMP,
        KafkaError.POLICY_VIOLATION,
        KafkaError._INVALID_ARG,
    }
)
"""Produce errors caused by the record itself: producing it again can only fail again."""


def is_poison(error: KafkaError | None) -> bool:
    """True when a record was refused for what it is (too large, invalid), not for a passing
    condition of the cluster: the record must be dead-lettered, not retried."""
    return error is not None and error.code() in POISON_CODES


def is_fatal(error: KafkaError) -> bool:
    """True when a client is unusable and must be recreated. librdkafka reports some fatal
    consumer errors (e.g. a static member fenced after a broker restart) as code `_FATAL` on a
    message, with `fatal()` false."""
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


def records(batch: Iterable[Message], who: str, *, eof: set[tuple[str, int]] | None = None) -> list[Message]:
    """The data records of a consumed batch.

    End-of-partition events are dropped (and collected into `eof` when given); a fatal error
    raises `KafkaException`, so the caller's session restarts with new clients; any other error
    is logged and dropped: librdkafka retries those itself.
    """
    out = []
    for msg in batch:
        err = msg.error()
        if err is None:
            out.append(msg)
        elif err.code() == KafkaError._PARTITION_EOF:
            if eof is not None:
                eof.add((msg.topic(), msg.partition()))
        elif is_fatal(err):
            raise KafkaException(err)
        elif err.code() in _NOT_YET:
            log.debug("%s: %s", who, err)  # a topic subscribed before it was created
        else:
            log.warning("%s: %s", who, err)
    return out


# --- shared read primitives -------------------------------------------------------------------


def take(consumer: Any, max_records: int, timeout: float) -> list[Any]:
    """Up to `max_records` records: waits at most `timeout` for the first, then takes what is
    already fetched without waiting (librdkafka's `consume` would wait out the whole timeout)."""
    first = consumer.poll(timeout)
    if first is None:
        return []
    return [first, *consumer.consume(max_records - 1, timeout=0)]


_NOT_READY = (
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
)


def watermarks(consumer: Any, tp: TopicPartition, wait_s: float = 30.0) -> tuple[int, int]:
    """(low, high) offsets of a partition. A topic created a moment ago may not be in the
    metadata or have a leader yet, and a read may time out (librdkafka's `_TIMED_OUT` here is not
    flagged retriable): such errors are retried for `wait_s`, others raised.

    Before each retry the topic's metadata is asked for afresh (`list_topics`): a consumer keeps
    its cached metadata of a topic it does not subscribe to (the command processor reads the events
    partitions' ends through its command consumer), and after a broker was lost that entry could
    keep a partition without leader or without the partition (`Local: Unknown partition`) for
    minutes, every read failing on it; or keep as leader a node that is down, every read timing
    out (in a chaos run's rolling restart the orders stage aborted four batches on it over 65 s,
    until it left its group past `max.poll.interval.ms`)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0]
            retried = error.retriable() or error.code() in _NOT_READY or error.code() == KafkaError._TIMED_OUT
            if not retried or time.monotonic() > deadline:
                raise
            refresh_metadata(consumer, tp.topic)
            time.sleep(0.2)


def refresh_metadata(client: Any, topic: str, timeout: float = 5.0) -> None:
    """Ask the cluster for `topic`'s metadata now (the answer replaces the client's cached entry);
    a failure is left to the caller's next attempt."""
    try:
        client.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        log.debug("metadata of %s: %s", topic, exc)


# --- the shared write primitive --------------------------------------------------------------


def produce(
    producer: Producer, topic: str, value: bytes | None, key: bytes | None, *, poll_s: float = 0.05, **kw: Any
) -> None:
    """`producer.produce(topic, value, key, **kw)` that waits for room in librdkafka's queue
    (serving delivery reports for `poll_s` at a time) instead of failing with BufferError. A
    `timestamp` of 0 or None means the producer's own. Other errors (a record the client
    refuses before it leaves: KafkaException) are the caller's."""
    if "timestamp" in kw and not kw["timestamp"]:
        del kw["timestamp"]
    while True:
        try:
            producer.produce(topic, value, key, **kw)
            return
        except BufferError:
            producer.poll(poll_s)


# --- the watchdog for client calls that can hang ----------------------------------------------


class StuckClient(Exception):
    """A librdkafka call did not return in time; its clients must be abandoned."""


CALL_TIMEOUT_S = 20.0


def bounded(what: str, call: Callable[[], Any], timeout: float = CALL_TIMEOUT_S) -> Any:
    """Run a blocking client call, giving up after `timeout`.

    librdkafka's `send_offsets_to_transaction` can block forever, past its own timeout, when
    the group coordinator restarts (librdkafka #5456, #5511). The caller then drops the clients;
    the next producer with the same transactional id fences the stuck one.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name=f"call-{what}", daemon=True).start()
    if not done.wait(timeout):
        raise StuckClient(f"{what} did not return within {timeout:.0f}s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
