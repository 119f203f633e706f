"""Erasure over Kafka: delete a subject's key, then append `SubjectForgotten` to the audited
privacy topic; and the listener that evicts a forgotten subject's cached key in every worker.

The key store is the truth: once the row is deleted no process can unwrap the key again, and
the cache of a process that misses the record expires after the keyring's time to live.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError, Message, TopicPartition

from streams.config import Settings
from streams.core.clock import utc_now
from streams.kafka.clients import producer, reader, records
from streams.kafka.hosting import restart_loop
from streams.kafka.runtime import ensure_topics
from streams.privacy.deployment import cached_keyrings, keyring_for
from streams.privacy.keys import Keyring
from streams.wire.codec import AvroCodec
from streams.wire.forgotten import SubjectForgotten, forgotten_catalog
from streams.wire.topics import privacy_spec, privacy_topic

log = logging.getLogger(__name__)


class AuditNotWritten(RuntimeError):
    """The key was deleted but `SubjectForgotten` could not be appended: run the erasure again
    (it is idempotent and appends the record, with `key_deleted` false)."""


@dataclass(frozen=True)
class Forgotten:
    """The outcome of an erasure: whether a key was deleted, and where the audit record is."""

    subject: str
    key_deleted: bool
    topic: str
    offset: int


def forget_subject(
    settings: Settings,
    subject: str,
    origin: str,
    *,
    keyring: Keyring | None = None,
    codec: AvroCodec | None = None,
    timeout_s: float = 30.0,
) -> Forgotten:
    """Delete `subject`'s data key and append `SubjectForgotten` (`AuditNotWritten` when the
    append fails after the key was deleted)."""
    if not subject:
        raise ValueError("a subject id is required")
    ring = keyring or keyring_for(settings.pg_dsn)
    codec = codec or AvroCodec.connect(forgotten_catalog(), settings.registry_url, settings.topic_prefix)
    spec = privacy_spec(settings.topic_prefix, settings.max_message_bytes)
    ensure_topics(settings, [spec])
    deleted = ring.forget(subject)
    value = codec.encode(SubjectForgotten(subject, utc_now(), deleted, origin))
    errors: list[KafkaError | None] = []
    delivered: list[Message] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        errors.append(err)
        delivered.append(msg)

    out = producer(settings)
    out.produce(spec.name, value, subject.encode(), on_delivery=on_delivery)
    out.flush(timeout_s)
    if not delivered or errors[0] is not None:
        raise AuditNotWritten(
            f"the key of {subject!r} {'was deleted' if deleted else 'was already gone'}, but "
            f"SubjectForgotten was not appended to {spec.name}: {errors[0] if errors else 'timed out'}; "
            "run the erasure again"
        )
    offset = int(delivered[0].offset() or 0)
    log.info("forgot a subject (key deleted: %s), audit record %s@%d", deleted, spec.name, offset)
    return Forgotten(subject, deleted, spec.name, offset)


class ForgetListener:
    """Evicts the cached keys of subjects forgotten elsewhere, as `SubjectForgotten` records
    arrive (from the end of the privacy topic: earlier erasures deleted keys before this process
    could cache them). The record key is the subject, so no decoding is needed.

    `ready` is set once the listener stands at a known offset of the topic (its end when the
    session started): every record appended after that is seen. Cleared while a session restarts."""

    name = "privacy"

    def __init__(self, settings: Settings, keyrings: Callable[[], list[Keyring]] = cached_keyrings) -> None:
        self.settings, self.keyrings = settings, keyrings
        self._stop = threading.Event()
        self.ready = threading.Event()
        """Set once every `SubjectForgotten` appended from now on will be read."""

    def run(self) -> None:
        """Listen until stopped (restarting after failures)."""
        restart_loop("privacy listener", self._session, self._stop)

    def stop(self) -> None:
        """Ask `run` to return."""
        self._stop.set()

    def _session(self) -> None:
        ensure_topics(
            self.settings, [privacy_spec(self.settings.topic_prefix, self.settings.max_message_bytes)]
        )
        consumer = reader(self.settings)
        topic = privacy_topic(self.settings.topic_prefix)
        try:
            _, end = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
            consumer.assign([TopicPartition(topic, 0, end)])  # an offset, not OFFSET_END: known now
            self.ready.set()
            while not self._stop.is_set():
                for msg in records(consumer.consume(100, 0.5), "privacy listener"):
                    self.evict((msg.key() or b"").decode())
        finally:
            self.ready.clear()
            consumer.close()

    def evict(self, subject: str) -> None:
        """Drop `subject`'s key from every keyring of this process."""
        for ring in self.keyrings():
            ring.evict(subject)
