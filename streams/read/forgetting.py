"""Forgetting on the read side: a view's documents lose a forgotten subject's personal fields.

A view that copies personal values into its documents declares it (`View.forgetting`). Its
projector then keeps, in each partition's store, an index from subject id to the documents
naming it (`x:<subject>\\0<entity key>`, written with the documents), and follows the privacy
topic: for each `SubjectForgotten` it looks the subject's documents up in the index (no scan of
the documents), erases them (`forget_document`) and publishes them like any change, so the
compacted view topic, the real-time feed and the sink's PostgreSQL rows get the erased document.

Each store keeps the privacy topic's offset it has handled (`f:privacy`), written with the
erased documents in one atomic write: a worker that was down or a partition that moves to
another worker resumes where its store stands, and an erasure handled twice changes nothing. A
store new to the worker starts at the privacy topic's end: its documents come from the view
topic (erased already by their previous owner) or are folded from events whose forgotten fields
the codec reads as their replacement.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Iterator

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.config import Settings
from streams.core.views import Document, Forgetting, forget_document
from streams.kafka.clients import reader, records
from streams.kafka.runtime import ensure_topics
from streams.kafka.store import PartitionStore
from streams.read.batch import Batch
from streams.read.documents import DOC_PREFIX, decode_document, document_key
from streams.wire.topics import privacy_spec, privacy_topic

log = logging.getLogger(__name__)

INDEX_PREFIX = b"x:"
"""The key space of the subject index in a view's stores."""
POSITION_KEY = b"f:privacy"
"""The store key of the privacy topic offset the store has handled."""
_OFFSET = struct.Struct(">q")


def index_key(subject: str, entity_key: bytes) -> bytes:
    """The index entry saying that document `entity_key` names `subject`."""
    return INDEX_PREFIX + subject.encode() + b"\0" + entity_key


def indexed(forgetting: Forgetting, document: Document) -> str | None:
    """The subject a document names (None: none, or it is deleted)."""
    subject = None if document.state is None else document.state.get(forgetting.subject)
    return subject if isinstance(subject, str) and subject else None


def documents_of(store: PartitionStore, subject: str) -> list[bytes]:
    """The entity keys the index lists for `subject` (some may no longer name it)."""
    prefix = INDEX_PREFIX + subject.encode() + b"\0"
    return [key[len(prefix) :] for key, _ in store.scan(prefix)]


def index_entries(forgetting: Forgetting, stored: Iterable[tuple[bytes, Document]]) -> Iterator[bytes]:
    """The index keys of documents (by entity key) that name a subject."""
    for entity_key, document in stored:
        subject = indexed(forgetting, document)
        if subject is not None:
            yield index_key(subject, entity_key)


def index_restored(forgetting: Forgetting, store: PartitionStore) -> int:
    """Write the index entries of every document of a store filled from the view topic (a
    restore writes documents only); the number of entries."""
    docs = ((key[len(DOC_PREFIX) :], decode_document("", raw)) for key, raw in store.scan(DOC_PREFIX))
    entries = dict.fromkeys(index_entries(forgetting, docs), b"")
    store.write(entries, {})
    return len(entries)


def stored_position(store: PartitionStore) -> int | None:
    """The privacy topic offset a store has handled up to (None: never set)."""
    raw = store.get(POSITION_KEY)
    return None if raw is None else int(_OFFSET.unpack(raw)[0])


def position_value(offset: int) -> bytes:
    """The stored form of a privacy topic offset."""
    return _OFFSET.pack(offset)


class PrivacyFeed:
    """The `SubjectForgotten` records after the lowest position of a projector's stores (the
    record key is the subject: no decoding is needed). Used by the stage's thread only."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = privacy_topic(settings.topic_prefix)
        self._consumer: Consumer | None = None
        self._at = -1

    def end(self) -> int:
        """The privacy topic's end offset (where a new store starts)."""
        consumer = self._open()
        _, high = consumer.get_watermark_offsets(TopicPartition(self.topic, 0), timeout=10)
        return max(int(high), 0)

    def poll(self, start: int) -> list[tuple[int, str]]:
        """(offset, subject) of the records from `start` on that have arrived (maybe none)."""
        consumer = self._open()
        if start != self._at:
            consumer.assign([TopicPartition(self.topic, 0, start)])
            self._at = start
        found = [
            (m.offset(), (m.key() or b"").decode()) for m in records(consumer.consume(100, 0), "privacy")
        ]
        if found:
            self._at = found[-1][0] + 1
        return found

    def _open(self) -> Consumer:
        if self._consumer is None:
            ensure_topics(
                self.settings, [privacy_spec(self.settings.topic_prefix, self.settings.max_message_bytes)]
            )
            self._consumer = reader(self.settings)
        return self._consumer

    def close(self) -> None:
        """Release the consumer (the next poll opens another)."""
        if self._consumer is not None:
            try:
                self._consumer.close()
            except (KafkaException, RuntimeError):
                log.debug("privacy feed close failed", exc_info=True)
            self._consumer = None
            self._at = -1


def erase_into(
    forgetting: Forgetting,
    batch: Batch,
    positions: dict[int, int],
    found: list[tuple[int, str]],
) -> int:
    """Put the documents of the subjects `found` (privacy offset, subject) into `batch` erased,
    for each store whose position is not past the record, and the stores' new positions; the
    number of documents erased. Index entries of deleted documents, or of documents that no
    longer name the subject, are dropped."""
    erased = 0
    for offset, subject in found:
        for partition, position in positions.items():
            if offset < position:
                continue
            for entity_key in documents_of(batch.stores[partition], subject):
                current = batch.documents.get((partition, entity_key))
                if current is None:
                    raw = batch.get(partition, document_key(entity_key))
                    current = None if raw is None else decode_document(entity_key.decode(), raw)
                changed = None if current is None else forget_document(forgetting, current, subject)
                if changed is not None:
                    batch.documents[(partition, entity_key)] = changed
                    erased += 1
                stale = current is None or indexed(forgetting, current) != subject
                if (changed is None and stale) or (changed is not None and changed.state is None):
                    batch.put(partition, index_key(subject, entity_key), None)
    end = found[-1][0] + 1
    for partition, position in positions.items():
        batch.put(partition, POSITION_KEY, position_value(max(end, position)))
    return erased
