"""Views: read models declared as plain data, folded from events (no Kafka, no Faust).

A view is a name, an optional key function and one `evolve(state, event, meta)` that folds an
event into a JSON-able document state (a dict; `None` deletes the document). Documents keep the
last version seen per source aggregate, so applying an event twice, or an older one, changes
nothing: that is what makes at-least-once projection exact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from streams.core.records import Message

State = dict[str, Any]


class EventMeta(msgspec.Struct, frozen=True):
    """What a view handler may know about an event besides its body (from the headers)."""

    aggregate_id: str
    aggregate_version: int
    event_type: str
    occurred_at: str


@dataclass(frozen=True)
class Forgetting:
    """What a view's documents hold of a data subject, and what forgetting the subject does.

    `subject` is the state field holding the subject's id (e.g. `customer_id`); `fields` maps
    each state field copied from a personal field to its replacement (e.g. `{"name": None}`).
    When the subject is forgotten (`SubjectForgotten`), the read side gives each document whose
    `subject` field names it those replacements (`delete=False`, the default) or deletes it
    (`delete=True`), then publishes it like any change: the view topic, the real-time feed and
    the PostgreSQL rows the sink copies get the erased document.
    """

    subject: str
    fields: Mapping[str, Any]
    delete: bool = False


def without_personal(forgetting: Forgetting, state: State) -> State:
    """The state with each declared personal field it holds set to its replacement (what the
    copies that cannot be shredded, such as the real-time feed, carry)."""
    return {**state, **{k: v for k, v in forgetting.fields.items() if k in state}}


def forget_document(forgetting: Forgetting, document: Document, subject: str) -> Document | None:
    """The document once `subject` is forgotten, or None when there is nothing to change (it
    does not name the subject, it is deleted, or its personal fields are the replacements)."""
    state = document.state
    if state is None or state.get(forgetting.subject) != subject:
        return None
    erased = None if forgetting.delete else without_personal(forgetting, state)
    if erased == state:
        return None
    return Document(
        document.entity_id, erased, document.versions, document.last_event_version, document.last_updated
    )


@dataclass(frozen=True)
class View:
    """A read model of one context.

    `evolve(state, event, meta)` returns the new document state (`state` is None for a document
    that does not exist yet) or None to delete it; it must not mutate its input.
    `key_by(event, previous_key)` gives the document id when it is not the aggregate id; it is
    called for every event of an aggregate with the key it gave last time (None at first), so
    a key that only the first event carries sticks to the later ones. Such a view is fed
    through a repartition topic. `list_fields` are the state fields a list query may filter on.

    The key may also **change** over an aggregate's life (a view keyed by order status): when
    `key_by` gives another key than last time (or None), the aggregate is retracted from the
    document of the old key before its event goes to the new one. `retract(state, meta)` gives
    that document's state without the aggregate (None deletes it); without `retract` the old
    document is deleted, which suits documents that hold one aggregate each. A view whose
    documents gather several aggregates and whose key can move must give `retract`.

    `keep_on_move=True` is for views whose documents each record a part of an aggregate's
    history rather than where it is now (one document per time window): a new key leaves the
    old document as it is, and nothing is retracted.

    `forgetting` declares the state fields a view copies from personal fields and what
    forgetting their subject does to the documents (`Forgetting`; default: replace them). A view
    that copies a personal value and does not declare it keeps the plain value in its documents
    until it is replayed.
    """

    name: str
    evolve: Callable[[State | None, Message, EventMeta], State | None]
    key_by: Callable[[Message, str | None], str | None] | None = None
    list_fields: tuple[str, ...] = ()
    retract: Callable[[State, EventMeta], State | None] | None = None
    keep_on_move: bool = False
    forgetting: Forgetting | None = None

    @property
    def repartitioned(self) -> bool:
        """True when documents are not keyed by aggregate id."""
        return self.key_by is not None


class Document(msgspec.Struct, frozen=True):
    """A read-model document with its bookkeeping.

    `versions` holds the last aggregate version folded in per source aggregate (the
    idempotency check); `state` is None once deleted, and the versions survive the deletion.
    """

    entity_id: str
    state: State | None
    versions: Mapping[str, int] = msgspec.field(default_factory=dict)
    last_event_version: int = 0
    last_updated: str = ""

    def seen(self, aggregate_id: str) -> int:
        """The last version of `aggregate_id` folded into this document (0: none)."""
        return self.versions.get(aggregate_id, 0)


def apply_event(
    view: View, document: Document | None, entity_id: str, event: Message, meta: EventMeta
) -> Document | None:
    """The document after `event`, or None when the event is not newer than what it has seen."""
    current = document or Document(entity_id, None)
    if meta.aggregate_version <= current.seen(meta.aggregate_id):
        return None
    state = view.evolve(current.state, event, meta)
    return Document(
        entity_id=entity_id,
        state=state,
        versions={**current.versions, meta.aggregate_id: meta.aggregate_version},
        last_event_version=meta.aggregate_version,
        last_updated=meta.occurred_at,
    )


def apply_retraction(view: View, document: Document | None, meta: EventMeta) -> Document | None:
    """The document after the aggregate of `meta` moved to another key with the event of
    `meta`, or None when there is nothing to change (no such document, or a retraction seen
    already). The aggregate's version is kept, so a repeated retraction changes nothing."""
    if document is None or meta.aggregate_version <= document.seen(meta.aggregate_id):
        return None
    state = None
    if document.state is not None and view.retract is not None:
        state = view.retract(document.state, meta)
    return Document(
        entity_id=document.entity_id,
        state=state,
        versions={**document.versions, meta.aggregate_id: meta.aggregate_version},
        last_event_version=meta.aggregate_version,
        last_updated=meta.occurred_at,
    )


def fold_view(view: View, events: list[tuple[Message, EventMeta]]) -> dict[str, Document]:
    """Every document of a view from events in log order (the reference for tests and audits).

    A deleted document stays in the result with `state=None`, as in the projector's store (a
    tombstone on the view topic, a 404 from the query API): its `versions` are what keep a
    repeated or older event from bringing it back. Filter on `state is not None` for the live
    documents."""
    documents: dict[str, Document] = {}
    keys: dict[str, str | None] = {}
    for event, meta in events:
        if view.key_by is None:
            key: str | None = meta.aggregate_id
        else:
            previous = keys.get(meta.aggregate_id)
            key = keys[meta.aggregate_id] = view.key_by(event, previous)
            if previous is not None and key != previous and not view.keep_on_move:
                retracted = apply_retraction(view, documents.get(previous), meta)
                if retracted is not None:
                    documents[previous] = retracted
        if key is None:
            continue
        updated = apply_event(view, documents.get(key), key, event, meta)
        if updated is not None:
            documents[key] = updated
    return documents


class ReadModelDocument(msgspec.Struct, frozen=True):
    """A document as published on `<ctx>.<view>` (schema `streams.ReadModelDocument`).

    `state` is JSON text, so the JDBC sink can write it to a jsonb column unchanged.
    """

    entity_id: str
    entity_type: str
    state: str
    last_event_version: int
    last_updated: str
    versions: dict[str, int] = msgspec.field(default_factory=dict)
    """v2: the last version folded in per source aggregate, so a new owner of the partition can
    restore the document from the view topic and still skip events it has seen."""


class ViewVersions(msgspec.Struct, frozen=True):
    """Which version of a view the query API serves, and which one a replay is building
    (schema `streams.ViewVersions`, compacted `<ctx>.views-control`, key = view name)."""

    view: str
    active: int
    building: int = 0
    updated_at: str = ""
