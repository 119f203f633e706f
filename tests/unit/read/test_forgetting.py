"""A forgotten subject on the read side, without Kafka: the subject index written with the
documents, and the erasure pass that replaces (or deletes) the documents naming the subject."""

from __future__ import annotations

from dataclasses import replace

from streams.contexts.orders import OrderPlaced
from streams.core.views import Document, Forgetting, forget_document
from streams.read.documents import DOC_PREFIX, decode_document, encode_document
from streams.read.forgetting import (
    POSITION_KEY,
    documents_of,
    erase_into,
    index_key,
    index_restored,
    position_value,
    stored_position,
)
from streams.read.projector import Batch, ViewProjector
from tests.unit.read.test_projector_batch import event, projector, published, run_batch

__all__ = ["projector"]  # the fixture

NAMED = Forgetting("customer_id", {"customer_name": None, "customer_email": "[erased]"})


def test_forget_document_replaces_the_declared_fields_of_the_subjects_documents_only() -> None:
    doc = Document("o-1", {"customer_id": "c-A", "customer_name": "Ada", "customer_email": "a@x", "n": 1})
    erased = forget_document(NAMED, doc, "c-A")
    assert erased is not None and erased.state == {
        "customer_id": "c-A", "customer_name": None, "customer_email": "[erased]", "n": 1,
    }  # fmt: skip
    assert forget_document(NAMED, doc, "c-B") is None
    assert forget_document(NAMED, erased, "c-A") is None, "erased already: nothing to publish"
    assert forget_document(replace(NAMED, delete=True), doc, "c-A") == Document("o-1", None)
    assert forget_document(NAMED, Document("o-2", None), "c-A") is None


def test_documents_are_indexed_by_subject_and_erased_from_the_index(projector: ViewProjector) -> None:
    run_batch(
        projector,
        [
            event(projector, "o-A", 1, OrderPlaced("c-A", "EUR", "Ada", "ada@example.org"), 0),
            event(projector, "o-A2", 1, OrderPlaced("c-A", "EUR", "Ada", None), 1),
            event(projector, "o-B", 1, OrderPlaced("c-B", "EUR", "Bob", "bob@example.org"), 2),
        ],
    )
    store = projector.stores[0]
    assert sorted(documents_of(store, "c-A")) == [b"o-A", b"o-A2"]
    assert documents_of(store, "c-B") == [b"o-B"]
    assert stored_position(store) is None

    batch = Batch(dict(projector.stores))
    assert erase_into(projector.view.forgetting, batch, {0: 0}, [(0, "c-A")]) == 2  # type: ignore[arg-type]
    projector.complete(batch)
    docs = published(projector, batch)
    assert set(docs) == {"o-A", "o-A2"}
    assert docs["o-A"]["customer_name"] is None and docs["o-A"]["customer_email"] is None
    assert docs["o-A"]["customer_id"] == "c-A" and docs["o-A"]["status"] == "placed"
    store.write(batch.writes[0], {})
    raw = b"".join(v for _, v in store.scan(DOC_PREFIX))
    assert b"Ada" not in raw and b"ada@example.org" not in raw and b"bob@example.org" in raw
    assert decode_document("o-B", store.get(DOC_PREFIX + b"o-B") or b"").state["customer_name"] == "Bob"  # type: ignore[index]
    assert stored_position(store) == 1

    again = Batch(dict(projector.stores))
    erase_into(projector.view.forgetting, again, {0: 0}, [(0, "c-A")])  # type: ignore[arg-type]
    projector.complete(again)
    assert again.out == [], "an erasure handled twice publishes nothing"


def test_a_store_past_the_record_is_left_alone_and_a_deleting_view_drops_the_index(
    projector: ViewProjector,
) -> None:
    run_batch(projector, [event(projector, "o-A", 1, OrderPlaced("c-A", "EUR", "Ada"), 0)])
    store = projector.stores[0]
    batch = Batch(dict(projector.stores))
    assert erase_into(NAMED, batch, {0: 5}, [(3, "c-A")]) == 0
    assert batch.writes[0] == {POSITION_KEY: position_value(5)}

    deleting = Batch(dict(projector.stores))
    assert erase_into(replace(NAMED, delete=True), deleting, {0: 0}, [(0, "c-A")]) == 1
    assert deleting.writes[0][index_key("c-A", b"o-A")] is None
    assert deleting.documents[(0, b"o-A")].state is None
    store.write(deleting.writes[0], {})
    assert documents_of(store, "c-A") == []


def test_a_restored_store_gets_the_index_of_its_documents(projector: ViewProjector) -> None:
    store = projector.stores[0]
    docs = {
        b"o-A": Document("o-A", {"customer_id": "c-A", "customer_name": "Ada"}),
        b"o-B": Document("o-B", {"customer_id": "c-B"}),
        b"o-N": Document("o-N", {"status": "placed"}),
        b"o-D": Document("o-D", None),
    }
    store.write({DOC_PREFIX + k: encode_document(d) for k, d in docs.items()}, {})  # as a restore does
    assert index_restored(NAMED, store) == 2
    assert documents_of(store, "c-A") == [b"o-A"] and documents_of(store, "c-B") == [b"o-B"]
