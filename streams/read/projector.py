"""Projecting events into a view's documents, published to the view's compacted topic."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from confluent_kafka import Message

from streams import metrics
from streams.config import Settings
from streams.core.views import Document, ReadModelDocument, View, apply_event, apply_retraction
from streams.kafka.runtime import ContextRuntime
from streams.kafka.store import PartitionStore
from streams.read.documents import (
    DocumentCache,
    ViewDocuments,
    decode_document,
    document_key,
    encode_document,
)
from streams.read.forgetting import (
    POSITION_KEY,
    PrivacyFeed,
    erase_into,
    index_key,
    index_restored,
    indexed,
    position_value,
    stored_position,
)
from streams.read.restore import last_position, restore_partition
from streams.read.stage import Batch, HaltProjection, Restored, Stage, event_meta, failure_reason
from streams.wire import headers as h
from streams.wire.codec import RegistryUnavailable
from streams.wire.dlq import ErrorPolicy, dead_letter, source_of
from streams.wire.jsonable import json_bytes

log = logging.getLogger(__name__)

FROZEN_FIELD = "_frozen"
"""The field a document's state gets while events that would make it too large are dead-lettered."""


class ViewProjector(Stage):
    """Folds events (or re-keyed events) into a view's documents and publishes each change."""

    label = "view"

    def __init__(
        self, settings: Settings, runtime: ContextRuntime, view: View, version: int, **kw: Any
    ) -> None:
        super().__init__(settings, runtime, **kw)
        self.view = view
        self.version = version
        self.output = runtime.topics.view_version(view.name, version)
        self.dlq = runtime.topics.view_dlq(view.name)
        self.entity_type = f"{runtime.context.name}.{view.name}"
        self.policy = ErrorPolicy.parse(settings.view_errors)
        self._labels = (runtime.context.name, view.name, str(version))
        gauge = metrics.VIEW_CACHE_BYTES.labels(*self._labels)
        self._cache = DocumentCache(settings.read_document_cache_bytes, on_size=gauge.set)
        self._stored: dict[tuple[int, bytes], tuple[Document, int]] = {}
        """The documents the batch being completed stores (cached once it is committed)."""
        self.documents = ViewDocuments(self, self.inputs[0], self.wakeups, self._cache)
        """This view version's documents on this worker, as the query API reads them."""
        self._privacy = PrivacyFeed(settings) if view.forgetting is not None else None
        self._privacy_at = 0.0
        self.forgotten = 0
        """Documents erased so far because their subject was forgotten (for tests and metrics)."""

    def handle(self, msg: Message, batch: Batch) -> None:
        partition = msg.partition()
        key = msg.key() or b""
        entity_id = key.decode("utf-8", "replace")
        try:
            meta = event_meta(msg.headers(), entity_id)
            current = batch.documents.get((partition, key))
            if current is None:
                current = self._cache.get(partition, batch.stores.get(partition), key)
            if current is None:
                raw = batch.get(partition, document_key(key))
                current = None if raw is None else decode_document(entity_id, raw)
            event = None
            if msg.value() is None:  # a retraction: the aggregate's key moved away from this one
                updated = apply_retraction(self.view, current, meta)
            else:
                event = self.runtime.codec.decode(msg.value()).message
                updated = apply_event(self.view, current, entity_id, event, meta)
        except RegistryUnavailable:
            raise  # not the event's fault: the session restarts with back-off and reads it again
        except Exception as exc:  # a bad event or a handler bug must not stop the other documents
            self.reject(msg, batch, failure_reason(exc), str(exc))
            return
        if updated is None:
            metrics.VIEW_SKIPPED.labels(*self._labels).inc()
            return
        batch.documents[(partition, key)] = updated
        batch.applied.setdefault((partition, key), []).append((msg, event, meta))

    def complete(self, batch: Batch) -> None:
        """Store and publish each document the batch changed, once, in its last state: like a
        Kafka Streams record cache, a compacted view topic gets the latest state per commit,
        not every intermediate one (the events topic keeps those). A document that would pass
        the view topic's record limit keeps its last state that fits, and each event that would
        grow it past the limit goes to the view's DLQ (`document_too_large`)."""
        self._stored = {}
        for (partition, key), doc in batch.documents.items():
            value = self._published(doc)
            if batch.fits(key, value) == 0:
                sources = tuple(msg for msg, _, _ in batch.applied.get((partition, key), ()))
                self._store(batch, partition, key, doc)
                batch.produce(
                    self.output, partition, key, value, self._position(batch, partition), sources=sources
                )
            else:
                self._without_too_large(batch, partition, key)

    def _store(self, batch: Batch, partition: int, key: bytes, doc: Document) -> None:
        """Write a document (and its subject's index entry, for a view declaring `forgetting`)."""
        stored = encode_document(doc)
        self._stored[(partition, key)] = (doc, len(stored))
        batch.put(partition, document_key(key), stored)
        if self.view.forgetting is not None:
            subject = indexed(self.view.forgetting, doc)
            if subject is not None:
                batch.put(partition, index_key(subject, key), b"")

    def idle(self) -> None:
        """Erase the documents of subjects forgotten since the stores' privacy positions (at
        most twice a second): stored, published and committed like a batch (`streams.read.forgetting`)."""
        forgetting, feed = self.view.forgetting, self._privacy
        if forgetting is None or feed is None or not self.stores or time.monotonic() < self._privacy_at:
            return
        self._privacy_at = time.monotonic() + 0.5
        stores = dict(self.stores)
        positions: dict[int, int] = {}
        for partition, store in stores.items():
            found = stored_position(store)
            if found is None:  # new to this worker: erased by its previous owner, or folded erased
                found = feed.end()
                store.write({POSITION_KEY: position_value(found)}, {})
            positions[partition] = found
        forgotten = feed.poll(min(positions.values()))
        if not forgotten:
            return
        batch = Batch(stores, limit=self.settings.max_message_bytes)
        batch.positions = {p: {self.inputs[0]: store.position(self.inputs[0])} for p, store in stores.items()}
        erased = erase_into(forgetting, batch, positions, forgotten)
        self.complete(batch)
        failures = self._produce(batch)
        if failures:
            raise RuntimeError(f"erased documents not acknowledged: {failures[0][0].str()}")
        for partition, store in stores.items():
            store.write(batch.writes.get(partition, {}), {})
        self.after_batch(batch)
        self.wakeups.committed(batch.positions, batch.writes)
        self.forgotten += erased
        log.info("%s v%d: %d subject(s) forgotten, %d document(s) erased", self.entity_type,
                 self.version, len(forgotten), erased)  # fmt: skip

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the stage, then release the privacy topic's consumer."""
        super().stop(timeout)
        if self._privacy is not None:
            self._privacy.close()

    def _position(self, batch: Batch, partition: int) -> h.Headers:
        """The header saying up to where the batch has folded the partition's input."""
        position = batch.positions.get(partition, {}).get(self.inputs[0])
        return [] if position is None else [(h.VIEW_POSITION, str(position).encode())]

    def _published(self, doc: Document) -> bytes | None:
        """The view topic's record of a document (None: a tombstone)."""
        if doc.state is None:
            return None
        return self.runtime.codec.encode(
            ReadModelDocument(
                entity_id=doc.entity_id,
                entity_type=self.entity_type,
                state=json_bytes(doc.state, sort_keys=True).decode(),
                last_event_version=doc.last_event_version,
                last_updated=doc.last_updated,
                versions=dict(doc.versions),
            )
        )

    def restore(self, partition: int, store: PartitionStore) -> Restored | None:
        """Fill an empty store from the view topic: every document's latest state with its
        versions, and the input position of the partition's last record."""
        position = last_position(self.settings, self.output, partition)
        if position is None:
            return None

        def convert(key: bytes, value: bytes) -> tuple[bytes, bytes]:
            published: ReadModelDocument = self.runtime.codec.decode(value).message
            doc = Document(
                key.decode("utf-8", "replace"), orjson.loads(published.state), published.versions,
                published.last_event_version, published.last_updated,
            )  # fmt: skip
            return document_key(key), encode_document(doc)

        keys, records = restore_partition(self.settings, self.output, partition, store, convert)
        if self.view.forgetting is not None:  # the subject index of the restored documents
            index_restored(self.view.forgetting, store)
        store.write({}, {self.inputs[0]: position})  # last: a restore cut short starts over
        return Restored(self.output, keys, records, position)

    def _without_too_large(self, batch: Batch, partition: int, key: bytes) -> None:
        """Fold the batch's events of one document again, one at a time, dead-lettering each
        event that would make it pass the limit; store and publish what fits."""
        raw = batch.get(partition, document_key(key))
        entity_id = key.decode("utf-8", "replace")
        doc = None if raw is None else decode_document(entity_id, raw)
        changed: Document | None = None
        sources = []
        frozen = 0
        for msg, event, meta in batch.applied.get((partition, key), ()):
            if event is None:
                candidate = apply_retraction(self.view, doc, meta)
            else:
                candidate = apply_event(self.view, doc, entity_id, event, meta)
            if candidate is None:
                continue
            size = batch.fits(key, self._published(candidate))
            if size:
                detail = f"the document would take {size} bytes (the view topic's limit: {batch.limit})"
                self.reject(msg, batch, "document_too_large", detail)
                frozen += 1
                continue
            doc = changed = candidate
            sources.append(msg)
        if frozen and doc is not None and isinstance(doc.state, dict):  # the document says so
            note = {"reason": "document_too_large", "limit": batch.limit, "events_dead_lettered": frozen}
            marked = Document(doc.entity_id, {**doc.state, FROZEN_FIELD: note}, doc.versions,
                              doc.last_event_version, doc.last_updated)  # fmt: skip
            if batch.fits(key, self._published(marked)) == 0:
                doc = changed = marked
        if frozen:
            metrics.VIEW_FROZEN.labels(*self._labels).inc()
            version = doc.last_event_version if doc else 0
            log.warning(
                "%s v%d: document %r is frozen at version %d: %d event(s) would pass the view topic's "
                "limit of %d bytes (dead-lettered)",
                self.entity_type, self.version, entity_id, version, frozen, batch.limit,
            )  # fmt: skip
        if changed is not None:
            self._store(batch, partition, key, changed)
            value = self._published(changed)
            batch.produce(
                self.output, partition, key, value, self._position(batch, partition), sources=tuple(sources)
            )

    def reject(self, msg: Message, batch: Batch, reason: str, detail: str) -> None:
        source = source_of(msg.topic(), msg.partition(), msg.offset())
        if self.policy is ErrorPolicy.HALT:
            raise HaltProjection(f"{self.entity_type} v{self.version}: {source}: {reason}: {detail}")
        letter = dead_letter(
            key=msg.key(), value=msg.value(), headers=msg.headers(), reason=reason, detail=detail,
            source=source, view_version=str(self.version),
        )  # fmt: skip
        batch.dead_letter(self.dlq, letter)
        metrics.VIEW_DLQ.labels(*self._labels, reason).inc()
        log.warning("%s v%d: %s to DLQ: %s (%s)", self.entity_type, self.version, source, reason, detail)

    def after_batch(self, batch: Batch) -> None:
        for (partition, key), (doc, size) in self._stored.items():  # committed: the cache may follow
            self._cache.put(partition, batch.stores.get(partition), key, doc, size)
        self._stored = {}
        now = time.time()
        latency = metrics.VIEW_LATENCY.labels(*self._labels)
        for ts in batch.timestamps:
            latency.observe(max(now - ts, 0.0))

    def on_lag(self, lag: int) -> None:
        metrics.VIEW_LAG.labels(*self._labels).set(lag)
