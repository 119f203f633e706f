"""`fold_view` keeps a deleted document, with `state=None` and its versions, as the projector
does: a repeated or older event cannot bring it back."""

from __future__ import annotations

from typing import Any

from streams.core.views import EventMeta, View, fold_view

T0 = "2026-01-01T00:00:00Z"


def _evolve(state: dict[str, Any] | None, event: str, meta: EventMeta) -> dict[str, Any] | None:
    return None if event == "closed" else {"last": event}


VIEW = View("per-member", _evolve)


def _meta(aggregate_id: str, version: int) -> EventMeta:
    return EventMeta(aggregate_id, version, "E", T0)


def test_a_deleted_document_is_kept_with_state_none_and_its_versions() -> None:
    log = [("opened", _meta("m-1", 1)), ("closed", _meta("m-1", 2)), ("opened", _meta("m-2", 1))]
    docs = fold_view(VIEW, log)
    assert set(docs) == {"m-1", "m-2"}
    assert docs["m-1"].state is None and docs["m-1"].versions == {"m-1": 2}
    assert {key for key, doc in docs.items() if doc.state is not None} == {"m-2"}


def test_a_replayed_event_does_not_bring_a_deleted_document_back() -> None:
    log = [("opened", _meta("m-1", 1)), ("closed", _meta("m-1", 2))]
    assert fold_view(VIEW, [*log, ("opened", _meta("m-1", 1))])["m-1"].state is None
